"""Coverage-centric coreset selection (CCS; Zheng et al., ICLR 2023).

1. Drop the floor(beta * N) hardest samples (highest scores; with the AUM scorer these are the
   low-AUM, likely mislabelled ones). The selector uses the scores it is given.
2. Split the remaining score range [min, max] into `strata` equal-width bins.
3. Allocate the budget smallest stratum first (`allocate_strata`).
4. Sample uniformly without replacement inside each stratum with the given rng.

Differences from the reference code, on purpose: the upper edge is max itself with the maximum
falling into the last bin (the reference's 1.0001 * max shrinks the range when max < 0, as with
our negated AUM, and drops the hardest kept sample from every bin); `strata` is honoured; the
sampling is seeded.

The hard cutoff β is tuned per dataset and prune rate in CCS (README: CIFAR-10 0.3 at 90%;
ImageNet 0.2 at 80%, 0.3 at 90%). A Hydra sweep is a cartesian product, so β cannot be swept
together with the rate: `beta_by_rate` maps each prune rate to its β, and when it is set the β
used is its entry for the run's prune rate (`beta` is then ignored). The β actually used is
`self.beta` either way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.selection.budget import Selector, hard_first
from coreset_lab.values import check_int, check_real

log = logging.getLogger(__name__)

TABLE_KEY = "selector.beta_by_rate"


def check_beta(beta: object, prune_rate: float) -> float:
    """0 <= beta <= prune_rate: dropping more than the pruned fraction leaves too few samples."""
    b = check_real(beta, "selector.beta", 0.0, 1.0, high_open=True)
    if b > prune_rate:
        raise UserError(
            f"selector.beta must be a real number in [0, selector.prune_rate={prune_rate}] "
            f"(the hard samples dropped count against the pruned fraction), got {b}"
        )
    return b


def parse_beta_table(table: object) -> dict[float, float]:
    """{prune rate: β}, every rate in [0, 1) and every β in [0, its rate]."""
    if not isinstance(table, Mapping) or not table:
        raise UserError(
            f"{TABLE_KEY} must be a non-empty mapping {{prune rate: beta}}, e.g. "
            f"{{0.5: 0.0, 0.9: 0.3}}; got {table!r}"
        )
    out: dict[float, float] = {}
    for key, value in table.items():
        try:
            rate = float(key)
        except (TypeError, ValueError):
            raise UserError(f"{TABLE_KEY}: key {key!r} is not a prune rate") from None
        rate = check_real(rate, f"{TABLE_KEY} key", 0.0, 1.0, high_open=True)
        if any(math.isclose(rate, r, abs_tol=1e-9) for r in out):
            raise UserError(f"{TABLE_KEY}: prune rate {rate} appears twice")
        beta = check_real(value, f"{TABLE_KEY}[{rate}]", 0.0, 1.0, high_open=True)
        if beta > rate:
            raise UserError(
                f"{TABLE_KEY}[{rate}]={beta}: beta must be in [0, {rate}] (the hard samples "
                f"dropped count against the pruned fraction)"
            )
        out[rate] = beta
    return dict(sorted(out.items()))


def beta_for_rate(table: dict[float, float], prune_rate: float) -> float:
    """The table's β for `prune_rate` (equal within 1e-9); a missing rate is a UserError."""
    for rate, beta in table.items():
        if math.isclose(rate, prune_rate, abs_tol=1e-9):
            return beta
    rates = ", ".join(f"{r:g}" for r in table)
    raise UserError(
        f"{TABLE_KEY} has no entry for selector.prune_rate={prune_rate:g} (it has the rates "
        f"{rates}); add one, or set {TABLE_KEY}=null to use selector.beta"
    )


@register("selector")
class CCS(Selector):
    name = "ccs"

    def __init__(
        self,
        prune_rate: float = 0.5,
        beta: float = 0.0,
        strata: int = 50,
        beta_by_rate: Mapping | None = None,
    ) -> None:
        super().__init__(prune_rate)
        if beta_by_rate is None:
            self.beta_by_rate = None
            self.beta = check_beta(beta, self.prune_rate)
        else:
            self.beta_by_rate = parse_beta_table(beta_by_rate)
            self.beta = beta_for_rate(self.beta_by_rate, self.prune_rate)
            log.debug(
                "CCS: beta %g for prune rate %g from %s (selector.beta=%s ignored)",
                self.beta,
                self.prune_rate,
                TABLE_KEY,
                beta,
            )
        self.strata = check_int(strata, "selector.strata", 1)

    def select(
        self, scores: np.ndarray, labels: np.ndarray | None, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        n = scores.shape[0]
        pool = np.sort(hard_first(scores)[math.floor(self.beta * n + 1e-9) :])
        if pool.size < k:  # beta <= prune_rate makes this impossible unless k was rounded up
            raise UserError(
                f"selector.beta={self.beta} leaves {pool.size} samples, fewer than the "
                f"budget of {k}; lower selector.beta"
            )
        # The non-empty strata only, in stratum order, each in pool order: the same draws as
        # over every stratum (an empty one takes nothing), in O(N log N) whatever
        # selector.strata is (it may exceed N).
        _, stratum, counts = np.unique(
            stratum_of(scores[pool], self.strata), return_inverse=True, return_counts=True
        )
        grouped = pool[np.argsort(stratum, kind="stable")]
        members = np.split(grouped, np.cumsum(counts)[:-1])
        take = allocate_strata(np.array([m.size for m in members]), k)
        picks = [
            rng.choice(m, size=t, replace=False) for m, t in zip(members, take, strict=True) if t
        ]
        return np.concatenate(picks)


def stratum_of(values: np.ndarray, strata: int) -> np.ndarray:
    """Equal-width bin of each value over [min, max]; the maximum goes to the last bin."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:  # all equal: one stratum holds everything
        return np.zeros(values.shape, dtype=np.int64)
    pos = (values - lo) / (hi - lo) * strata
    return np.clip(np.floor(pos).astype(np.int64), 0, strata - 1)


def allocate_strata(sizes: np.ndarray, budget: int) -> np.ndarray:
    """How many to take from each stratum, summing exactly to `budget` (<= sizes.sum()).

    Visit the non-empty strata from smallest to largest (ties in stratum order); each takes
    min(size, remaining // strata_left). Exactness: once a stratum is capped by its share q,
    every later share is at most q + 1 <= that stratum's size <= the later sizes, so the last
    stratum can always take what remains; if no stratum is ever capped, all are taken whole.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if not 0 <= budget <= int(sizes.sum()):
        raise ValueError(f"budget {budget} outside [0, {int(sizes.sum())}]")
    take = np.zeros_like(sizes)
    nonempty = np.flatnonzero(sizes > 0)
    order = nonempty[np.argsort(sizes[nonempty], kind="stable")]
    remaining = budget
    for left, s in zip(range(len(order), 0, -1), order, strict=True):
        take[s] = min(int(sizes[s]), remaining // left)
        remaining -= int(take[s])
    assert remaining == 0, (sizes, budget)
    return take
