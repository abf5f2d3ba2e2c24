"""GraNd (Paul, Ganguli, Dziugaite, "Deep Learning on a Data Diet", NeurIPS 2021): the norm of
the loss gradient of a sample, E_w ||g_t(x, y)||_2, at epoch t, averaged over initialisations w.
Higher = larger gradient = harder.

DeepCore's GraNd (PatrickZH/DeepCore, deepcore/methods/grand.py), the form the pruning papers
compare with, takes only the last linear layer z = W h + b: for cross-entropy the gradient with
respect to the logits is g = softmax(z) - onehot(y) (= the bias gradient), the weight gradient is
g h^T, and it returns the L2 norm of [bias grad, weight grad], i.e.
    ||g|| * sqrt(1 + ||h||^2),
computed in eval mode after `selection_epochs` (40) epochs of training, averaged over `repeat`
(10) trainings with seeds 5 apart, hardest kept.

Here: the same last-layer norm, in eval mode on un-augmented inputs, from the scoring model at
the end of its training (`trainer.proxy_epochs` plays DeepCore's `selection_epochs`): the final
probabilities p and the squared norm ||h||^2 of the input of the classifier, which the model
service reads in the same pass (`ScoringModel.feature_sqnorm`). One scoring model, so no average
over initialisations (Paul et al.: 10; DeepCore: `repeat`); docs/paper_defaults.md says so.
"""

from __future__ import annotations

import numpy as np

from coreset_lab.registry import register
from coreset_lab.scoring.base import ScoreInputs, Scorer


@register("scorer")
class GraNd(Scorer):
    """||softmax(z) - onehot(y)|| * sqrt(1 + ||h||^2): the last linear layer's gradient norm."""

    name = "grand"
    needs = frozenset({"probs", "features"})

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        if inputs.probs is None or inputs.feature_sqnorm is None:
            raise ValueError("GraNd needs the scoring model's probabilities and feature norms")
        p = np.asarray(inputs.probs, dtype=np.float64)
        y = np.asarray(inputs.labels, dtype=np.int64)
        # ||p - e_y||^2 = sum_c p_c^2 - 2 p_y + 1
        sq = (p * p).sum(1) - 2.0 * p[np.arange(len(y)), y] + 1.0
        h = np.asarray(inputs.feature_sqnorm, dtype=np.float64)
        return np.sqrt(np.clip(sq, 0.0, None) * (1.0 + h))
