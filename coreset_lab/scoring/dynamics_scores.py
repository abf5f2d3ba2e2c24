"""Scores from training dynamics: AUM, forgetting, EL2N, TDDS. Higher = harder, always.

Dynamics are [epoch, sample] arrays over the whole train set, and a model trained on a subset
leaves some entries unrecorded (`seen` is False there, the values are fill). Every scorer here
reads only recorded entries; a sample with no recorded entry at all in the epochs a scorer reads
gets NaN, so that a protocol can score one fold at a time and a selector refuses to rank
samples nobody scored.
"""

from __future__ import annotations

import logging

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.scoring.base import ScoreInputs, Scorer, require_dynamics
from coreset_lab.values import check_choice, check_int, check_real

log = logging.getLogger(__name__)

# The official TDDS code takes log(p + 1e-8); kept so scores match it where p underflows.
TDDS_LOG_EPS = 1e-8


def _nan_if_never_seen(score: np.ndarray, seen: np.ndarray) -> np.ndarray:
    return np.where(seen.any(axis=0), score, np.nan)


@register("scorer")
class AUM(Scorer):
    """Area under the margin, negated: -sum_t [p_t(y) - max_{c != y} p_t(c)].

    As in ELFS/CCS the margin is on softmax probabilities (Pleiss et al. use logits), so each
    term is in [-1, 1]. The sum runs over the epochs in which the sample was recorded; with a
    partial `seen` mask, samples recorded in fewer epochs have sums over fewer terms.
    """

    name = "aum"
    needs = frozenset({"dynamics"})

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        dyn = require_dynamics(inputs, self.name)
        margin = dyn.p_label.astype(np.float64) - dyn.p_other.astype(np.float64)
        aum = np.where(dyn.seen, margin, 0.0).sum(axis=0)
        return _nan_if_never_seen(-aum, dyn.seen)


@register("scorer")
class Forgetting(Scorer):
    """Forgetting events (Toneva et al. 2019): correct -> incorrect transitions between epochs.

    The state before the first epoch is "not learned", so epoch 0 never counts as a forgetting
    event. Unrecorded epochs are skipped: the transition is taken between consecutive
    *recorded* epochs of the sample.

    never_learned: samples never predicted correctly in any recorded epoch get
      "zero" -> 0 (default), what the CCS, ELFS, D2 and DeepCore code computes (its
               `last_correctness` starts at 0, so a never-learned sample has no event and ties
               with never-forgotten ones); the forgetting baselines of the papers we compare
               with come from that code. On a hard-first top-k this keeps never-learned
               (often mislabelled) samples out of the coreset;
      "max"  -> E, the number of recorded epochs (Toneva et al. treat them as forgotten without
               end). E is a fixed value above anything a learned sample can reach (at most
               floor(E/2) events in E epochs), independent of the data.
    """

    name = "forgetting"
    needs = frozenset({"dynamics"})

    def __init__(self, never_learned: str = "zero") -> None:
        self.never_learned = check_choice(never_learned, "scorer.never_learned", ("max", "zero"))

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        dyn = require_dynamics(inputs, self.name)
        seen, correct = dyn.seen, dyn.correct & dyn.seen
        learned = np.zeros(dyn.num_samples, dtype=bool)  # state carried over unseen epochs
        ever = np.zeros(dyn.num_samples, dtype=bool)
        events = np.zeros(dyn.num_samples, dtype=np.int64)
        # A loop over epochs (vectorised over samples) keeps the carried state simple and is
        # cheap: E is at most a few hundred.
        for t in range(dyn.epochs):
            events += learned & seen[t] & ~correct[t]
            learned = np.where(seen[t], correct[t], learned)
            ever |= correct[t]
        never_value = dyn.epochs if self.never_learned == "max" else 0
        score = np.where(ever, events, never_value).astype(np.float64)
        return _nan_if_never_seen(score, seen)


@register("scorer")
class EL2N(Scorer):
    """EL2N: mean over the first `epochs` epochs of ||softmax - onehot(y)||_2.

    Computed without logits: ||p - e_y||^2 = sum_c p_c^2 - 2 p_y + 1. The mean runs over the
    recorded epochs among the first k = min(epochs, E): asking for more epochs than were recorded
    uses all of them (logged). ELFS/CCS *sum* over epochs 0-9 of one augmented run, which ranks
    identically when every epoch is recorded; Paul et al. average several runs on clean inputs,
    which this is not.
    """

    name = "el2n"
    needs = frozenset({"dynamics"})

    def __init__(self, epochs: int = 10) -> None:
        self.epochs = check_int(epochs, "scorer.epochs", 1)

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        dyn = require_dynamics(inputs, self.name)
        k = min(self.epochs, dyn.epochs)
        if k < self.epochs:
            log.warning(
                "EL2N: scorer.epochs=%d but only %d epochs recorded; using %d",
                self.epochs,
                dyn.epochs,
                k,
            )
        seen = dyn.seen[:k]
        sq = dyn.p_sqnorm[:k].astype(np.float64) - 2.0 * dyn.p_label[:k] + 1.0
        # float32 rounding can leave ~-1e-7 for a perfectly confident correct prediction.
        norm = np.sqrt(np.clip(np.where(seen, sq, 0.0), 0.0, None))
        count = seen.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = norm.sum(axis=0) / count
        return np.where(count > 0, mean, np.nan)


@register("scorer")
class TDDS(Scorer):
    """Temporal Dual-Depth Scoring (Zhang et al., CVPR 2024), as the official code computes it.

    With p_t = softmax(logits of epoch t) and eps = 1e-8:
      d_t = sum_c | p_{t+1,c} * (log(p_{t+1,c} + eps) - log(p_{t,c} + eps)) |,  t = 0..T-2
    Window k (k = 0..T-J) covers epochs k..k+J-1, i.e. the J-1 differences d_k..d_{k+J-2}:
      mu_k = mean of those J-1 differences
      v_k  = sqrt(sum (d_t - mu_k)^2)        # L2 norm of the deviations, not the variance
      S    = sum_k v_k * beta * (1 - beta)^(T-J-k)   # the last window weighs beta
    Only the first T = trajectory_len recorded epochs are read. TDDS keeps the samples with the
    HIGHEST S, so S is returned as is (higher = harder): use TDDS with a selector keeping the
    hard end (topk keep=hard).

    Unrecorded epochs: a difference d_t exists only if epochs t and t+1 were both recorded;
    window means and norms run over existing differences (a window without any contributes 0),
    and a sample without any difference in the trajectory gets NaN. With every epoch recorded
    this is exactly the official computation.
    """

    name = "tdds"
    needs = frozenset({"dynamics", "logits"})

    def __init__(self, trajectory_len: int = 10, window: int = 10, decay: float = 0.9) -> None:
        self.trajectory_len = check_int(trajectory_len, "scorer.trajectory_len", 2)
        # J >= 2: a window needs at least one difference to have a mean.
        self.window = check_int(window, "scorer.window", 2, self.trajectory_len)
        self.decay = check_real(decay, "scorer.decay", 0.0, 1.0, low_open=True)

    def check_epochs(self, epochs: int) -> None:
        if self.trajectory_len > epochs:
            raise UserError(
                f"scorer.trajectory_len={self.trajectory_len} needs at least "
                f"{self.trajectory_len} recorded epochs, but trainer.proxy_epochs={epochs}: raise "
                f"trainer.proxy_epochs or lower scorer.trajectory_len (and scorer.window ≤ it)"
            )

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        dyn = require_dynamics(inputs, self.name)
        if dyn.logits is None:
            raise ValueError("scorer 'tdds' needs per-epoch logits; record them (needs 'logits')")
        T, J = self.trajectory_len, self.window
        if T > dyn.epochs:
            raise UserError(
                f"scorer.trajectory_len={T} needs at least {T} recorded epochs, but the scoring "
                f"model trained for {dyn.epochs}: raise trainer.proxy_epochs or lower "
                f"scorer.trajectory_len (and scorer.window ≤ it)"
            )
        diffs = kl_like_differences(dyn.logits[:T])  # [T-1, N]
        valid = dyn.seen[: T - 1] & dyn.seen[1:T]
        score = np.zeros(dyn.num_samples, dtype=np.float64)
        for k in range(T - J + 1):
            weight = self.decay * (1.0 - self.decay) ** (T - J - k)
            score += weight * _window_deviation_norm(diffs[k : k + J - 1], valid[k : k + J - 1])
        return np.where(valid.any(axis=0), score, np.nan)


def _log_softmax_eps(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = z.astype(np.float64)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return p, np.log(p + TDDS_LOG_EPS)


def kl_like_differences(logits: np.ndarray, chunk_elems: int = 1 << 23) -> np.ndarray:
    """d_t for t = 0..E-2 from [E, N, C] logits, float64 [E-1, N].

    Streams over epochs and sample chunks so that memory stays at a few chunk-sized float64
    arrays even for ImageNet-sized [E, N, C] stacks (which may be memory-mapped float16).
    """
    e, n, c = logits.shape
    out = np.empty((max(e - 1, 0), n), dtype=np.float64)
    rows = max(1, chunk_elems // max(c, 1))
    for start in range(0, n, rows):
        sl = slice(start, min(start + rows, n))
        _, log_prev = _log_softmax_eps(logits[0, sl])
        for t in range(1, e):
            p, log_p = _log_softmax_eps(logits[t, sl])
            out[t - 1, sl] = np.abs(p * (log_p - log_prev)).sum(axis=-1)
            log_prev = log_p
    return out


def _window_deviation_norm(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """L2 norm over the window of (d_t - window mean), using only valid differences."""
    count = valid.sum(axis=0)
    d = np.where(valid, d, 0.0)
    mean = d.sum(axis=0) / np.maximum(count, 1)
    dev = np.where(valid, d - mean, 0.0)
    return np.sqrt((dev**2).sum(axis=0))
