"""Coreset budget and the selector interface.

A selector maps scores (higher = harder) and optionally labels to the SORTED unique int64 indices
of exactly `coreset_size(N, prune_rate)` train samples. Arguments are validated in `__init__`
so that a bad config fails at instantiation, before any training.
"""

from __future__ import annotations

import math

import numpy as np

from coreset_lab.values import check_real

PRUNE_KEY = "selector.prune_rate"


def check_prune_rate(prune_rate: object) -> float:
    return check_real(prune_rate, PRUNE_KEY, 0.0, 1.0, high_open=True)


def coreset_size(n: int, prune_rate: float) -> int:
    """Samples kept: n - floor(prune_rate * n), at least 1.

    The 1e-9 absorbs binary rounding (0.3 * 10 = 2.9999999999999996 must prune 3).
    """
    p = check_prune_rate(prune_rate)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"coreset_size: the train set must have >= 1 sample, got n={n!r}")
    return max(1, int(n) - math.floor(p * int(n) + 1e-9))


def hard_first(scores: np.ndarray) -> np.ndarray:
    """Indices from hardest (highest score) to easiest; equal scores in index order."""
    return np.argsort(-scores, kind="stable")


def easy_first(scores: np.ndarray) -> np.ndarray:
    return np.argsort(scores, kind="stable")


class Selector:
    """Base selector: validates the prune rate, the scores and the labels."""

    uses_scores = True  # False: only the length of `scores` matters (NaN allowed)
    # What it reads besides scores and labels: {"embeddings"}: select() also takes embeddings=.
    needs: frozenset[str] = frozenset()

    def __init__(self, prune_rate: float = 0.5) -> None:
        self.prune_rate = check_prune_rate(prune_rate)

    def __call__(
        self,
        scores: np.ndarray,
        labels: np.ndarray | None,
        rng: np.random.Generator,
        embeddings: np.ndarray | None = None,
    ) -> np.ndarray:
        scores = self._check_scores(scores, self.uses_scores)
        labels = self._check_labels(labels, scores.shape[0])
        k = coreset_size(scores.shape[0], self.prune_rate)
        extra = {}
        if "embeddings" in self.needs:  # select(..., embeddings=) of a selector that reads them
            extra["embeddings"] = self._check_embeddings(embeddings, scores.shape[0])
        idx = np.asarray(self.select(scores, labels, k, rng, **extra), dtype=np.int64)
        # The contract every caller relies on; cheap to check and a bug if it fails.
        assert idx.shape == (k,), (type(self).__name__, idx.shape, k)
        idx = np.sort(idx)
        assert idx.size == 0 or (np.all(np.diff(idx) > 0) and 0 <= idx[0] and idx[-1] < len(scores))
        return idx

    def select(
        self, scores: np.ndarray, labels: np.ndarray | None, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    @staticmethod
    def _check_scores(scores: np.ndarray, finite: bool) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 1 or scores.size == 0:
            raise ValueError(f"scores must be a non-empty 1-D array, got shape {scores.shape}")
        bad = int((~np.isfinite(scores)).sum()) if finite else 0
        if bad:
            raise ValueError(
                f"{bad} of {scores.size} scores are NaN or infinite (unscored samples)"
            )
        return scores

    def _check_embeddings(self, embeddings: np.ndarray | None, n: int) -> np.ndarray:
        name = getattr(self, "name", type(self).__name__)
        if embeddings is None:
            raise ValueError(f"selector {name!r} needs embeddings; none were given")
        embeddings = np.asarray(embeddings)  # a memory-mapped array stays mapped
        if embeddings.ndim != 2 or embeddings.shape[0] != n:
            raise ValueError(
                f"selector {name!r}: embeddings must be [N={n}, d], got shape {embeddings.shape}"
            )
        return embeddings

    @staticmethod
    def _check_labels(labels: np.ndarray | None, n: int) -> np.ndarray | None:
        if labels is None:
            return None
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be an int array of shape ({n},), got {labels.dtype} {labels.shape}"
            )
        return labels
