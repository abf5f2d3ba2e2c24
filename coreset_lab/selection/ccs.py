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
"""

from __future__ import annotations

import math

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.scoring.base import check_int, check_real
from coreset_lab.selection.budget import Selector, hard_first


def check_beta(beta: object, prune_rate: float) -> float:
    """0 <= beta <= prune_rate: dropping more than the pruned fraction leaves too few samples."""
    b = check_real(beta, "selector.beta", 0.0, 1.0, high_open=True)
    if b > prune_rate:
        raise UserError(
            f"selector.beta must be a real number in [0, selector.prune_rate={prune_rate}] "
            f"(the hard samples dropped count against the pruned fraction), got {b}"
        )
    return b


class CCS(Selector):
    def __init__(self, prune_rate: float = 0.5, beta: float = 0.0, strata: int = 50) -> None:
        super().__init__(prune_rate)
        self.beta = check_beta(beta, self.prune_rate)
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
        bins = stratum_of(scores[pool], self.strata)
        members = [pool[bins == s] for s in range(self.strata)]
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
