"""Label-free clustering of embeddings: pseudo-labels for ELFS and k-NN graphs for D2.

`cluster(embeddings, num_clusters, cfg, seed)` never reads ground-truth labels: k-means keeps
the best of its restarts by its own objective, TEMI chooses its head by its own loss.
`cluster_metrics` compares with ground truth for reports only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from coreset_lab.clustering.kmeans import KMeansConfig, run_kmeans
from coreset_lab.clustering.knn import knn
from coreset_lab.clustering.metrics import cluster_metrics, hungarian_accuracy
from coreset_lab.errors import UserError

METHODS = ("kmeans", "temi")


@dataclass
class Clustering:
    labels: np.ndarray  # int64 [N] pseudo-labels in 0..k-1
    centroids: np.ndarray | None  # float32 [k, d] (k-means) or None (TEMI)
    info: dict = field(default_factory=dict)  # method, k, objective/loss, head, seconds, ...


def cluster(embeddings: np.ndarray, num_clusters: int, cfg: Mapping, seed: int = 0) -> Clustering:
    """Cluster `embeddings` (float [N, d]) with the method named by `cfg["method"]`.

    k is `cfg["num_clusters"]` when set (not null), else `num_clusters` (the caller passes the
    number of classes). `cfg` is the plain dict of conf/clustering/<name>.yaml.
    """
    if not isinstance(cfg, Mapping):
        raise UserError(f"clustering config must be a mapping, got {type(cfg).__name__}")
    cfg = dict(cfg)
    method = cfg.get("method")
    if method not in METHODS:
        raise UserError(f"clustering.method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "kmeans":
        c = KMeansConfig.from_dict(cfg)
        k = c.num_clusters if c.num_clusters is not None else num_clusters
        labels, centroids, info = run_kmeans(
            embeddings,
            k,
            spherical=c.spherical,
            normalize=c.normalize,
            n_init=c.n_init,
            niter=c.niter,
            init=c.init,
            seed=seed,
        )
        return Clustering(labels, centroids, info)
    from coreset_lab.clustering.temi import TEMIConfig, run_temi  # torch/Lightning: lazy

    c = TEMIConfig.from_dict(cfg)
    k = c.num_clusters if c.num_clusters is not None else num_clusters
    labels, centroids, info = run_temi(embeddings, k, c, seed=seed)
    return Clustering(labels, centroids, info)


__all__ = ["METHODS", "Clustering", "cluster", "cluster_metrics", "hungarian_accuracy", "knn"]
