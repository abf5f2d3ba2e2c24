"""Prototypicality (Sorscher et al., NeurIPS 2022, "Beyond neural scaling laws").

A label-free difficulty score: k-means on self-supervised embeddings, then the distance of each
sample to the centroid of its own cluster. Close to the prototype = easy, far = hard = high.

Which end to keep: Sorscher et al. keep the HARD (least prototypical) samples when data is
abundant and the easy ones only when it is scarce; ELFS' baseline keeps the samples farthest
from their centroid. So the usual pairing is `selector=topk` with `keep: hard`.

The ELFS baseline (eltsai/elfs `core/utils/misc.py::find_centroid_kmeans`,
`calculate_distances`): sklearn KMeans(K = number of classes, random_state=0) on the raw
embeddings, score = Euclidean norm of (embedding - assigned centroid). `normalize=False`
(default) is that: Euclidean k-means and Euclidean distance on the raw embeddings. It differs
only in the k-means run (faiss, `n_init` restarts of `niter` Lloyd iterations from `init`,
instead of sklearn 1.3's 10 k-means++ restarts of up to 300 iterations). `normalize=True`
clusters L2-normalised embeddings with spherical k-means and scores the cosine distance
1 - cos(x, c) to the own centroid.
"""

from __future__ import annotations

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.scoring.base import ScoreInputs, Scorer
from coreset_lab.values import check_choice, check_int


def require_embeddings(inputs: ScoreInputs, scorer: str) -> np.ndarray:
    emb = inputs.embeddings
    if emb is None:
        raise ValueError(f"scorer {scorer!r} needs embeddings but none were given")
    emb = np.asarray(emb)
    if emb.ndim != 2 or emb.shape[0] != inputs.num_samples or emb.shape[1] < 1:
        raise ValueError(
            f"scorer {scorer!r}: embeddings must be [N={inputs.num_samples}, d], "
            f"got shape {emb.shape}"
        )
    return emb


@register("scorer")
class Prototypicality(Scorer):
    """Distance to the own k-means centroid; higher = farther from the prototype = harder.

    k = `num_clusters`, or else the number of distinct values in `inputs.labels` (pseudo-labels
    in the label-free protocols); the labels are used for nothing else. The k-means seed is
    `inputs.seed`.
    """

    name = "prototypicality"
    needs = frozenset({"embeddings"})

    def __init__(
        self,
        normalize: bool = False,
        n_init: int = 3,
        num_clusters: int | None = None,
        niter: int = 50,
        init: str = "afk-mc2",
    ) -> None:
        if not isinstance(normalize, (bool, np.bool_)):
            raise UserError(f"scorer.normalize must be true or false, got {normalize!r}")
        self.normalize = bool(normalize)
        self.n_init = check_int(n_init, "scorer.n_init", 1)
        self.num_clusters = (
            None if num_clusters is None else check_int(num_clusters, "scorer.num_clusters", 1)
        )
        self.niter = check_int(niter, "scorer.niter", 1)
        from coreset_lab.clustering.kmeans import INITS

        self.init = check_choice(init, "scorer.init", tuple(INITS))

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        from coreset_lab.clustering.kmeans import run_kmeans
        from coreset_lab.clustering.knn import as_float32, l2_normalize

        emb = require_embeddings(inputs, self.name)
        n = emb.shape[0]
        k = self.num_clusters
        if k is None:
            k = int(np.unique(np.asarray(inputs.labels)).size)
        if k > n:
            raise UserError(f"scorer.num_clusters={k} exceeds the {n} samples")
        labels, centroids, _ = run_kmeans(
            emb,
            k,
            spherical=self.normalize,
            normalize=self.normalize,
            n_init=self.n_init,
            niter=self.niter,
            init=self.init,
            seed=inputs.seed,
        )
        x = l2_normalize(emb) if self.normalize else as_float32(emb)
        c = centroids.astype(np.float64)
        if self.normalize:
            c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        scores = np.empty(n, dtype=np.float64)
        for start in range(0, n, 65536):  # bounded memory on ImageNet-size inputs
            xs = x[start : start + 65536].astype(np.float64)
            cs = c[labels[start : start + 65536]]
            if self.normalize:  # cosine distance to the own centroid
                scores[start : start + 65536] = 1.0 - np.einsum("ij,ij->i", xs, cs)
            else:  # Euclidean distance to the own centroid
                diff = xs - cs
                scores[start : start + 65536] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return scores
