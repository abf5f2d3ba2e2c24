"""Clustering quality against ground truth: for REPORTS only, never to make a choice.

ELFS picks its TEMI checkpoint by Hungarian accuracy on test labels (a label leak); here these
numbers are diagnostics written next to the pseudo-labels and nothing reads them back.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def _as_labels(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1 or x.size == 0 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-D int array, got {x.dtype} {x.shape}")
    return x


def hungarian_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Best accuracy over one-to-one maps from clusters to classes (Hungarian algorithm).

    The numbers of clusters and classes may differ: unmatched clusters count as errors.
    """
    pred, true = _as_labels(pred, "pred"), _as_labels(true, "true")
    if pred.shape != true.shape:
        raise ValueError(f"pred and true differ in length: {pred.shape} vs {true.shape}")
    _, p = np.unique(pred, return_inverse=True)
    _, t = np.unique(true, return_inverse=True)
    counts = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(counts, (p, t), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / pred.size)


def cluster_metrics(pred: np.ndarray, true: np.ndarray) -> dict:
    """{"accuracy": Hungarian accuracy, "nmi": NMI (arithmetic mean), "ari": adjusted Rand}."""
    acc = hungarian_accuracy(pred, true)
    return {
        "accuracy": acc,
        "nmi": float(normalized_mutual_info_score(true, pred)),
        "ari": float(adjusted_rand_score(true, pred)),
    }
