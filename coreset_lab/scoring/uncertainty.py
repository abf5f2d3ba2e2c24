"""Label-free uncertainty scores from eval-mode probabilities. Higher = harder (less certain).

All three read `inputs.probs` (softmax of the trained model on un-augmented inputs) and ignore
the labels. Unlike DeepCore, least confidence is 1 - max_c p_c on probabilities (not the max
raw logit), and every score has the same orientation regardless of class balancing.
"""

from __future__ import annotations

import numpy as np

from coreset_lab.scoring.base import ScoreInputs, Scorer, require_probs


class Entropy(Scorer):
    """Predictive entropy -sum_c p_c log p_c (natural log), with 0 log 0 = 0."""

    name = "entropy"
    needs = frozenset({"probs"})

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        p = require_probs(inputs, self.name)
        # Exact zeros are common after float32 softmax; they contribute 0, not NaN.
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        return -plogp.sum(axis=1)


class Margin(Scorer):
    """1 - (p_top1 - p_top2): a small gap between the two most likely classes is hard.

    In [0, 1]; the offset only keeps it non-negative, the ranking is that of -(p1 - p2).
    """

    name = "margin"
    needs = frozenset({"probs"})

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        p = require_probs(inputs, self.name, min_classes=2)
        top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
        return 1.0 - (top2[:, 1] - top2[:, 0])


class LeastConfidence(Scorer):
    """1 - max_c p_c."""

    name = "least_confidence"
    needs = frozenset({"probs"})

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        p = require_probs(inputs, self.name)
        return 1.0 - p.max(axis=1)
