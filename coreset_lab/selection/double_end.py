"""Double-end pruning, the ELFS selector: a contiguous window of the hard-first ranking."""

from __future__ import annotations

import math

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.selection.budget import Selector, hard_first
from coreset_lab.selection.ccs import check_beta


@register("selector")
class DoubleEnd(Selector):
    """Rank hardest first, drop the floor(beta * N) hardest, keep the next coreset_size samples.

    The easiest (prune_rate - beta) * N are dropped at the other end. beta + (1 - prune_rate) > 1
    (beta > prune_rate) is an error, not the empty or short coreset of the ELFS code's `[m:-0]`
    slice. Unlike ELFS, the ranking uses the scores given (any scorer), not always AUM.
    """

    name = "double_end"

    def __init__(self, prune_rate: float = 0.5, beta: float = 0.0) -> None:
        super().__init__(prune_rate)
        self.beta = check_beta(beta, self.prune_rate)

    def select(
        self, scores: np.ndarray, labels: np.ndarray | None, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        n = scores.shape[0]
        start = math.floor(self.beta * n + 1e-9)
        if start + k > n:  # only when k was rounded up to 1 at an extreme prune rate
            raise UserError(
                f"selector.beta={self.beta} drops {start} of {n} samples, leaving fewer than "
                f"the budget of {k}; lower selector.beta"
            )
        return hard_first(scores)[start : start + k]
