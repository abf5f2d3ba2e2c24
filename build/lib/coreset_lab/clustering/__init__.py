"""Clustering of embeddings into pseudo-labels for ELFS, and k-NN graphs for D2.

`cluster(embeddings, num_clusters, cfg, seed)` is the one dispatch of the clustering methods.
k-means and TEMI never read ground-truth labels: k-means keeps the best of its restarts by its
own objective, TEMI chooses its head by its own loss, and neither is ever given a label
(`truth=` is refused). The exception is the DIAGNOSTIC `oracle` (clustering/oracle.py), whose
pseudo-labels ARE the ground truth with a share `noise` moved to other classes: it is the only
method `reads_labels(cfg)` is true for and the only one that takes `truth=`.
`cluster_metrics` compares with ground truth for reports only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from coreset_lab.clustering.kmeans import KMeansConfig, run_kmeans
from coreset_lab.clustering.knn import knn
from coreset_lab.clustering.metrics import cluster_metrics, hungarian_accuracy
from coreset_lab.clustering.oracle import OracleConfig, run_oracle
from coreset_lab.errors import UserError

METHODS = ("kmeans", "temi", "oracle")
# The methods whose pseudo-labels are read off the ground truth (diagnostics, never label-free).
READS_LABELS = frozenset({"oracle"})


@dataclass
class Clustering:
    labels: np.ndarray  # int64 [N] pseudo-labels in 0..k-1
    centroids: np.ndarray | None  # float32 [k, d] (k-means) or None (TEMI, oracle)
    info: dict = field(default_factory=dict)  # method, k, objective/loss, head, seconds, ...


def _method(cfg) -> str:
    if not isinstance(cfg, Mapping):
        raise UserError(f"clustering config must be a mapping, got {type(cfg).__name__}")
    method = cfg.get("method")
    if method not in METHODS:
        raise UserError(f"clustering.method must be one of {', '.join(METHODS)}; got {method!r}")
    return method


def reads_labels(cfg) -> bool:
    """Whether the clustering named by `cfg` (a dict or DictConfig of conf/clustering/*.yaml)
    reads ground-truth labels. Decided by the method, never by a config flag."""
    return _method(cfg) in READS_LABELS


def parse_config(cfg) -> tuple[str, object]:
    """(method, its options dataclass): every refusal of a clustering config, in one place."""
    method = _method(cfg)
    cfg = dict(cfg)
    if method == "kmeans":
        return method, KMeansConfig.from_dict(cfg)
    if method == "oracle":
        return method, OracleConfig.from_dict(cfg)
    from coreset_lab.clustering.temi import TEMIConfig  # torch/Lightning: lazy

    return method, TEMIConfig.from_dict(cfg)


def cluster(
    embeddings: np.ndarray | None,
    num_clusters: int,
    cfg: Mapping,
    seed: int = 0,
    *,
    truth: np.ndarray | None = None,
) -> Clustering:
    """Cluster `embeddings` (float [N, d]) with the method named by `cfg["method"]`.

    k is `cfg["num_clusters"]` when set (not null), else `num_clusters` (the caller passes the
    number of classes). `cfg` is the plain dict of conf/clustering/<name>.yaml. `truth` (the
    ground-truth train labels) is given to the oracle only, and refused by every other method;
    the oracle reads no embeddings (None is fine).
    """
    method, c = parse_config(cfg)
    if method in READS_LABELS:
        if truth is None:
            raise ValueError(f"clustering.method={method} reads the ground truth: pass truth=")
    elif truth is not None:
        raise ValueError(f"clustering.method={method} is label-free: it is never given labels")
    own_k = getattr(c, "num_clusters", None)  # the oracle has none: k = the number of classes
    k = num_clusters if own_k is None else own_k
    if method == "kmeans":
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
    elif method == "oracle":
        labels, centroids, info = run_oracle(truth, k, c, seed=seed)
    else:
        from coreset_lab.clustering.temi import run_temi

        labels, centroids, info = run_temi(embeddings, k, c, seed=seed)
    return Clustering(labels, centroids, info)


__all__ = [
    "METHODS",
    "READS_LABELS",
    "Clustering",
    "cluster",
    "cluster_metrics",
    "hungarian_accuracy",
    "knn",
    "parse_config",
    "reads_labels",
]
