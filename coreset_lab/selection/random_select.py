"""Uniform random coreset: the baseline every method must beat."""

from __future__ import annotations

import numpy as np

from coreset_lab.registry import register
from coreset_lab.selection.budget import Selector


@register("selector")
class RandomSelector(Selector):
    """k samples uniformly without replacement from `rng`; the scores are ignored."""

    name = "random"

    uses_scores = False

    def select(
        self, scores: np.ndarray, labels: np.ndarray | None, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        return rng.choice(scores.shape[0], size=k, replace=False)
