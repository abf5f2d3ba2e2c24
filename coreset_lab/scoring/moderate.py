"""The score of Moderate-DS (Xia et al., "Moderate Coreset: A Universal Method of Data Selection
for Real-world Data-efficient Deep Learning", ICLR 2023): the Euclidean distance of each sample's
feature to the median of its class, higher = farther from the class centre = harder.

The official code (tmlr-group/Moderate-DS, `get_median` / `get_distance`) takes the elementwise
median (`np.median(..., axis=0)`) of the features of each class and `np.linalg.norm(features -
median_of_own_class, axis=1)`; the paper writes the centre as a mean, the code (followed here)
as a median. Its selection, keeping the band of distances around the median distance, is the
selector `moderate` (coreset_lab/selection/moderate.py); this scorer can also feed any other
selector.

Classes are `inputs.labels`: the pseudo-labels under protocol=elfs (the label-free variant:
features = the frozen encoder's embeddings, classes = their clusters). The reference uses the
ground-truth classes and the features of a pretrained network; no protocol provides embeddings
together with ground-truth labels, so that variant is not available here.
"""

from __future__ import annotations

import numpy as np

from coreset_lab.registry import register
from coreset_lab.scoring.base import ScoreInputs, Scorer
from coreset_lab.scoring.prototypicality import require_embeddings

CHUNK = 65536  # rows per distance chunk: bounded memory on ImageNet-size embeddings


@register("scorer")
class MedianDistance(Scorer):
    """||x_i - median_{j: y_j = y_i} x_j||_2 on the raw embeddings, per (pseudo-)class."""

    name = "median_distance"
    needs = frozenset({"embeddings"})

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        emb = require_embeddings(inputs, self.name)
        if inputs.labels is None:
            raise ValueError("scorer 'median_distance' needs (pseudo-)labels for its classes")
        labels = np.asarray(inputs.labels)
        classes, inverse = np.unique(labels, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse))])
        medians = np.empty((classes.size, emb.shape[1]), dtype=np.float64)
        for c in range(classes.size):  # one class's rows at a time (a memory-mapped pool)
            rows = order[bounds[c] : bounds[c + 1]]  # increasing (a stable sort)
            medians[c] = np.median(np.asarray(emb[rows], dtype=np.float64), axis=0)
        scores = np.empty(emb.shape[0], dtype=np.float64)
        for start in range(0, emb.shape[0], CHUNK):
            sl = slice(start, start + CHUNK)
            diff = np.asarray(emb[sl], dtype=np.float64) - medians[inverse[sl]]
            scores[sl] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return scores
