"""Seeded, stratified K-fold splits of the train set, and which samples each fold model trains on
and scores (UNSEEN held-out scoring).

The labels are whatever the protocol uses (ground truth, or pseudo-labels when labels are
withheld): the split only needs one integer per sample.
"""

from __future__ import annotations

import numpy as np

from coreset_lab.errors import UserError

FOLDS_KEY = "protocol.folds"
MODES = ("fold", "complement")


def check_folds(folds: object, labels: np.ndarray, key: str = FOLDS_KEY) -> int:
    """`folds` as an int in [2, smallest class size], else a UserError naming `key`."""
    labels = np.asarray(labels)
    _, counts = np.unique(labels, return_counts=True)
    smallest = int(counts.min()) if counts.size else 0
    ok_type = isinstance(folds, (int, np.integer)) and not isinstance(folds, (bool, np.bool_))
    if not ok_type or folds < 2 or folds > smallest:
        hint = (
            f"an integer in [2, {smallest}] (every fold needs a sample of each class; "
            f"the smallest class has {smallest})"
            if smallest >= 2
            else "an integer >= 2, but the smallest class has fewer than 2 samples"
        )
        raise UserError(f"{key} must be {hint}, got {folds!r}")
    return int(folds)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold id in [0, folds) of every sample: int64 [N].

    Inside each class the samples are shuffled (seeded) and dealt round robin, so every class is
    spread over the folds as evenly as possible (sizes differ by at most one). The dealing of
    each class starts where the previous class stopped, so the fold sizes overall also differ by
    at most one. The same labels, folds and seed give the same split.
    """
    labels = np.asarray(labels)
    k = check_folds(folds, labels)
    rng = np.random.default_rng([int(seed), k, 0x5F01D])
    assign = np.empty(labels.shape[0], dtype=np.int64)
    start = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        assign[members] = (start + np.arange(members.size)) % k
        start = (start + members.size) % k
    return assign


def fold_plan(assign: np.ndarray, fold: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices the model of `fold` trains on, indices it scores), both sorted, disjoint.

    mode="fold" (the paper's Figure 3): train on fold k, score the K - 1 other folds.
    mode="complement": train on every fold but k, score fold k.
    """
    inside = np.flatnonzero(assign == fold)
    outside = np.flatnonzero(assign != fold)
    if mode == "fold":
        return inside, outside
    if mode == "complement":
        return outside, inside
    raise UserError(f"protocol.mode must be one of {', '.join(MODES)}; got {mode!r}")
