"""Scorer interface and the argument checks shared by scorers and selectors.

Convention, for every scorer: one float64 per train sample, **higher = harder**. Selectors then
say which end they keep, so no sign flip ever lives in a selector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coreset_lab.dynamics import Dynamics
from coreset_lab.registry import register

NEEDS = frozenset({"dynamics", "logits", "probs", "embeddings"})


@dataclass
class ScoreInputs:
    labels: np.ndarray | None  # int64 [N] labels the scoring model trained on (GT or pseudo)
    dynamics: Dynamics | None = None  # recorded during training (train mode, augmented batches)
    probs: np.ndarray | None = None  # float32 [N, C] softmax on un-augmented inputs, eval mode
    seed: int = 0
    embeddings: np.ndarray | None = None  # float32 [N, d] frozen-encoder (SSL) embeddings
    size: int | None = None  # N when there are no labels (method=random on an unlabelled pool)
    # float32 [N] squared norm of the penultimate features beside `probs` (GraNd's factor)
    feature_sqnorm: np.ndarray | None = None

    @property
    def num_samples(self) -> int:
        if self.labels is None:
            return int(self.size)
        return int(np.asarray(self.labels).shape[0])


class Scorer:
    """Maps `ScoreInputs` to float64 [N] scores, higher = harder.

    `needs` tells the pipeline what to produce before calling: "dynamics" (per-epoch statistics),
    "logits" (also the per-epoch logits inside the dynamics), "probs" (eval-mode softmax),
    "embeddings" (frozen-encoder features of the train samples).
    """

    name: str = "base"
    needs: frozenset[str] = frozenset()

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        raise NotImplementedError

    def check_epochs(self, epochs: int) -> None:
        """Refuse, before any training, a scoring model of `epochs` recorded epochs too short
        for what this scorer reads (TDDS's trajectory, Dyn-Unc's window)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


@register("scorer")
class RandomScore(Scorer):
    """Uniform [0, 1) scores from `inputs.seed`: the random baseline expressed as a scorer."""

    name = "random"
    needs = frozenset()

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        rng = np.random.default_rng(inputs.seed)
        return rng.random(inputs.num_samples, dtype=np.float64)


def require_dynamics(inputs: ScoreInputs, scorer: str) -> Dynamics:
    """The dynamics, checked against the labels; a missing input is a pipeline bug, not a typo."""
    dyn = inputs.dynamics
    if dyn is None:
        raise ValueError(f"scorer {scorer!r} needs training dynamics but none were recorded")
    if dyn.num_samples != inputs.num_samples:
        raise ValueError(
            f"scorer {scorer!r}: dynamics cover {dyn.num_samples} samples, "
            f"labels {inputs.num_samples}"
        )
    return dyn


def require_probs(inputs: ScoreInputs, scorer: str, min_classes: int = 1) -> np.ndarray:
    probs = inputs.probs
    if probs is None:
        raise ValueError(f"scorer {scorer!r} needs eval-mode probabilities but none were given")
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != inputs.num_samples or probs.shape[1] < min_classes:
        raise ValueError(
            f"scorer {scorer!r}: probs must be [N={inputs.num_samples}, C>={min_classes}], "
            f"got shape {probs.shape}"
        )
    return probs
