"""BADGE (Ash et al., ICLR 2020, "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower
Bounds") as the ELFS paper compares with it: an active-learning baseline that buys labels.

Rounds. A first batch of m_0 samples is drawn uniformly at random and its ground-truth labels are
bought. Then, `rounds` times: a model is trained from scratch on the labels bought so far (the
samples bought so far only), the samples not yet bought are embedded as gradient embeddings

    g_x = (p(x) - onehot(ŷ(x))) ⊗ h(x)        (p: softmax, ŷ = argmax p, h: penultimate features)

(the gradient of the cross-entropy with respect to the last layer's weights, taking the model's
own prediction as the label), and the next batch is chosen by k-means++ seeding on them; its
labels are bought. The batches are equal (`incremental.stage_sizes`, linear) and end exactly at
the budget, coreset_size(N, selector.prune_rate).

Labels. The only ground-truth labels read are those of the samples selected (bought), each once
it is selected: the label vector the round models train on holds the bought labels and a
placeholder (0) everywhere else, and a model trains on the bought samples only. The protocol
says so (`label_reader`); tests/test_badge.py corrupts the labels of every other sample and gets
the same coreset.

k-means++ without the C·d vectors. For g_x = a_x ⊗ h_x (a = p - e), ||g_x||² = ||a_x||²·||h_x||²
and <g_x, g_y> = <a_x, a_y>·<h_x, h_y>, so the squared distance to a centre needs only the
[N, C] and [N, d] factors: O(N·(C + d)) per pick, computed in row chunks, with no N×N matrix and
no N×(C·d) one. The seeding follows the reference code (JordanAsh/badge,
query_strategies/badge_sampling.py): the first centre is the sample of largest ||g||², each next
one is drawn with probability proportional to its squared distance to the nearest centre chosen
so far (a chosen sample has distance 0, so it is never drawn again). Every pick costs a pass over
the pool: at ImageNet scale and low prune rates (budgets of ~10^5 to 10^6 picks) this is the
method's own cost, on a GPU when there is one.

Each round's model is a scoring model from the model service (`ctx.models`): the scoring recipe
(trainer + trainer.scoring), trainer.proxy_epochs epochs over the samples bought so far, trained
once per key in the store and counted in the run's cost. See docs/paper_defaults.md for what the
papers leave open.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch

from coreset_lab.errors import UserError
from coreset_lab.protocols.base import Protocol, Selection
from coreset_lab.protocols.incremental import stage_sizes
from coreset_lab.registry import declared_name, register
from coreset_lab.selection.budget import coreset_size
from coreset_lab.services.models import ScoringJob
from coreset_lab.values import check_int, check_real

# Options that change how fast the selection runs, not what it picks.
SPEED_ONLY_OPTIONS = frozenset({"chunk_size"})
DEFAULT_ROUNDS = 9
DEFAULT_INITIAL_FRACTION = 0.1


@register("protocol")
@dataclass(frozen=True)
class Badge(Protocol):
    """`protocol=badge`: options spelt protocol.<option> (conf/protocol/badge.yaml)."""

    name: ClassVar[str] = "badge"
    # It chooses its samples itself: no scorer or selector reads anything of it.
    provides: ClassVar[frozenset[str]] = frozenset()

    rounds: int = DEFAULT_ROUNDS
    initial_fraction: float = DEFAULT_INITIAL_FRACTION
    chunk_size: int = 65536

    def __post_init__(self) -> None:
        check_int(self.rounds, "protocol.rounds", 1)
        check_real(
            self.initial_fraction, "protocol.initial_fraction", 0.0, 1.0,
            low_open=True, high_open=True,
        )  # fmt: skip
        check_int(self.chunk_size, "protocol.chunk_size", 1)

    # --- checks ---------------------------------------------------------------------------------

    def check(self, scorer, selector, settings) -> None:
        s, t = declared_name(type(scorer)), declared_name(type(selector))
        if s != "random" or t != "random":
            raise UserError(
                f"protocol=badge chooses its samples itself (k-means++ on gradient embeddings) "
                f"and reads only selector.prune_rate; it would ignore scorer={s} and selector={t}: "
                f"use method=badge (scorer=random, selector=random)"
            )

    def label_reader(self, scorer, selector) -> str | None:
        return "protocol=badge (it buys the ground-truth label of every sample it selects)"

    def missing_hint(self, missing: set[str]) -> str:
        return (
            "protocol=badge chooses its samples itself (k-means++ on gradient embeddings) and "
            "gives a scorer and a selector nothing: use method=badge"
        )

    def check_data(self, data, scorer, selector, settings) -> None:
        round_sizes(coreset_size(len(data.train), selector.prune_rate), self.rounds,
                    self.initial_fraction)  # fmt: skip

    # --- identity -------------------------------------------------------------------------------

    def trains_scoring_models(self, scorer) -> bool:
        return True

    def identity(self, scorer, selector) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in SPEED_ONLY_OPTIONS}

    def label(self, scorer, selector, choices: dict) -> str:
        """`badge`, with the options that differ from the defaults: `badge-r4-init0.2`."""
        name = "badge"
        if self.rounds != DEFAULT_ROUNDS:
            name += f"-r{self.rounds}"
        if self.initial_fraction != DEFAULT_INITIAL_FRACTION:
            name += f"-init{self.initial_fraction:g}"
        return name

    def __call__(self, ctx, scorer, selector) -> Selection:
        return badge_selection(ctx, selector.prune_rate, self)


def round_sizes(budget: int, rounds: int, initial_fraction: float) -> list[int]:
    """Labels bought after the random batch and after each round: m_0 < m_1 < ... = budget,
    m_0 = round(initial_fraction * budget) (at least 1), then equal additions."""
    m0 = max(1, int(np.floor(initial_fraction * budget + 0.5)))
    if budget - m0 < rounds:
        raise UserError(
            f"protocol.rounds={rounds} needs at least {rounds} samples to buy after the random "
            f"batch of {m0} (protocol.initial_fraction={initial_fraction} of the budget of "
            f"{budget}); lower protocol.rounds or protocol.initial_fraction"
        )
    return stage_sizes(budget, rounds + 1, initial_fraction, "linear")


# --- the rounds ------------------------------------------------------------------------------


def badge_selection(ctx, prune_rate: float, config: Badge) -> Selection:
    n = len(ctx.data.train)
    sizes = round_sizes(coreset_size(n, prune_rate), config.rounds, config.initial_fraction)
    rng = np.random.default_rng(ctx.seed)
    bought = np.zeros(n, dtype=np.int64)  # a placeholder where no label was bought
    round_of = np.full(n, -1, dtype=np.int64)  # 0: the random batch, r: BADGE round r

    def buy(indices: np.ndarray, r: int) -> None:
        # The only read of ground-truth train labels: those of the samples just selected.
        bought[indices] = np.asarray(ctx.data.train_targets)[indices]
        round_of[indices] = r

    models = []
    with ctx.stage("select"):
        buy(np.sort(rng.choice(n, size=sizes[0], replace=False)), 0)
        for r in range(1, config.rounds + 1):
            labelled = np.flatnonzero(round_of >= 0)
            job = ScoringJob(bought.copy(), labelled, ctx.seed, f"badge-round{r}",
                             record_features=True)  # fmt: skip
            with ctx.stage("train_scoring_model"):
                model = ctx.models.get(job)
            pool = np.flatnonzero(round_of < 0)
            k = sizes[r] - sizes[r - 1]
            picks = gradient_kmeanspp(
                model.probs[pool], model.features[pool], k, rng, chunk_size=config.chunk_size
            )
            buy(pool[picks], r)
            models.append({"round": r, "trained_on": int(labelled.size), "bought": k,
                           "samples_seen": int(model.info["samples_seen"])})  # fmt: skip
    coreset = np.flatnonzero(round_of >= 0)
    assert coreset.size == sizes[-1], (coreset.size, sizes)
    facts = {
        "rounds": config.rounds,
        "initial_fraction": config.initial_fraction,
        "round_sizes": sizes,
        "round_additions": [int(v) for v in np.diff([0, *sizes])],
        "models": models,
        "labels_read": int(coreset.size),  # ground-truth train labels read: the coreset's only
    }
    return Selection(coreset, None, {"badge": facts}, {"round": round_of})


# --- k-means++ seeding on gradient embeddings --------------------------------------------------


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gradient_factors(
    probs: np.ndarray, features: np.ndarray, device=None, chunk_size: int = 65536
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The factors of g_x = a_x ⊗ h_x: a = p - onehot(argmax p) [N, C], h [N, d] (float64 on
    `device`) and ||g_x||² = ||a_x||²·||h_x||² [N], built in row chunks."""
    device = _device() if device is None else torch.device(device)
    n = probs.shape[0]
    a = torch.empty((n, probs.shape[1]), dtype=torch.float64, device=device)
    h = torch.empty((n, features.shape[1]), dtype=torch.float64, device=device)
    sq = torch.empty(n, dtype=torch.float64, device=device)
    for s in range(0, n, chunk_size):
        e = min(n, s + chunk_size)
        # copies (the caller's arrays, or a read-only memory map, are never written)
        p = torch.tensor(np.asarray(probs[s:e], dtype=np.float64), device=device)
        p[torch.arange(e - s, device=device), p.argmax(1)] -= 1.0
        a[s:e] = p
        h[s:e] = torch.tensor(np.asarray(features[s:e], dtype=np.float64), device=device)
        sq[s:e] = p.pow(2).sum(1) * h[s:e].pow(2).sum(1)
    return a, h, sq


def sqdist_to(a: torch.Tensor, h: torch.Tensor, sq: torch.Tensor, c: int,
              chunk_size: int = 65536) -> torch.Tensor:  # fmt: skip
    """||g_x - g_c||² for every x, from the factors alone (clipped at 0 against rounding)."""
    out = torch.empty_like(sq)
    for s in range(0, sq.shape[0], chunk_size):
        e = min(sq.shape[0], s + chunk_size)
        inner = (a[s:e] @ a[c]) * (h[s:e] @ h[c])
        out[s:e] = (sq[s:e] + sq[c] - 2.0 * inner).clamp_min(0.0)
    return out


def gradient_kmeanspp(
    probs: np.ndarray,
    features: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    chunk_size: int = 65536,
    device=None,
) -> np.ndarray:
    """`k` distinct rows chosen by k-means++ seeding on the gradient embeddings of (`probs`,
    `features`), in the order picked. The first is the row of largest ||g||²; each next one is
    row j with probability D²(j) / Σ D², D² the squared distance to the nearest row chosen
    (drawn as the first j whose running sum of D² exceeds rng.random() · Σ D²). When every row
    left is at distance 0, the next is drawn uniformly among the rows not chosen."""
    n = probs.shape[0]
    if not 0 < k <= n:
        raise ValueError(f"cannot pick {k} of {n} samples")
    a, h, sq = gradient_factors(probs, features, device, chunk_size)
    first = int(torch.argmax(sq))
    chosen = [first]
    d2 = sqdist_to(a, h, sq, first, chunk_size)
    d2[first] = 0.0
    taken = np.zeros(n, dtype=bool)
    taken[first] = True
    while len(chosen) < k:
        running = torch.cumsum(d2, 0)
        total = float(running[-1])
        if total > 0.0:
            u = torch.tensor(rng.random() * total, dtype=torch.float64, device=running.device)
            j = int(torch.searchsorted(running, u, right=True))
            if j >= n:  # u rounded up to the total: the last row of positive weight
                j = int(torch.nonzero(d2 > 0)[-1])
        else:
            j = int(rng.choice(np.flatnonzero(~taken)))
        if taken[j]:  # a zero-width interval cannot be hit; a bug if it is
            raise AssertionError(f"k-means++ drew row {j} twice")
        chosen.append(j)
        taken[j] = True
        d2 = torch.minimum(d2, sqdist_to(a, h, sq, j, chunk_size))
        d2[j] = 0.0
    return np.asarray(chosen, dtype=np.int64)
