"""Scores from eval-mode probabilities of a trained model. Higher = harder (less certain).

Entropy, margin and least confidence read `inputs.probs` (softmax of the trained model on
un-augmented inputs) and ignore the labels; `EL2NFinal` also reads the labels. Unlike DeepCore,
least confidence is 1 - max_c p_c on probabilities (not the max raw logit), and every score has
the same orientation regardless of class balancing.
"""

from __future__ import annotations

import numpy as np

from coreset_lab.registry import register
from coreset_lab.scoring.base import ScoreInputs, Scorer, require_probs


@register("scorer")
class Entropy(Scorer):
    """Predictive entropy -sum_c p_c log p_c (natural log), with 0 log 0 = 0."""

    name = "entropy"
    needs = frozenset({"probs"})

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        p = require_probs(inputs, self.name)
        # Exact zeros are common after float32 softmax; they contribute 0, not NaN.
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        return -plogp.sum(axis=1)


@register("scorer")
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


@register("scorer")
class LeastConfidence(Scorer):
    """1 - max_c p_c."""

    name = "least_confidence"
    needs = frozenset({"probs"})

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        p = require_probs(inputs, self.name)
        return 1.0 - p.max(axis=1)


@register("scorer")
class EL2NFinal(Scorer):
    """EL2N of the final model: ||p - onehot(y)||_2 on its eval-mode probabilities.

    Unlike the three scores above it reads the labels (the ones the model trained on). It is the
    snapshot form of EL2N (Paul et al. average early-training snapshots; `EL2N` averages the
    recorded epochs), for protocols that score with a trained model only, such as UNSEEN's
    held-out scoring. In [0, sqrt(2)].
    """

    name = "el2n_final"
    needs = frozenset({"probs"})

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        p = require_probs(inputs, self.name)
        labels = np.asarray(inputs.labels, dtype=np.int64)
        p_label = p[np.arange(p.shape[0]), labels]
        # ||p - e_y||^2 = sum_c p_c^2 - 2 p_y + 1; rounding can leave ~-1e-16.
        return np.sqrt(np.clip((p**2).sum(axis=1) - 2.0 * p_label + 1.0, 0.0, None))
