"""Clustering of embeddings into pseudo-labels for ELFS, and k-NN graphs for D2.

`cluster(embeddings, num_clusters, cfg, seed)` builds the method its config names (`method:`, looked
up among the registered `ClusteringMethod`s) and runs it.
k-means and TEMI never read ground-truth labels: k-means keeps the best of its restarts by its
own objective, TEMI chooses its head by its own loss, and neither is ever given a label
(`truth=` is refused). The exception is the DIAGNOSTIC `oracle` (clustering/oracle.py), whose
pseudo-labels ARE the ground truth with a share `noise` moved to other classes: it is the only
method whose class `reads_truth`, and the only one that takes `truth=`.
`cluster_metrics` compares with ground truth for reports only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from coreset_lab.clustering.kmeans import KMeansConfig
from coreset_lab.clustering.knn import knn
from coreset_lab.clustering.metrics import cluster_metrics, hungarian_accuracy
from coreset_lab.clustering.options import ClusteringMethod
from coreset_lab.clustering.oracle import OracleConfig
from coreset_lab.clustering.temi import TEMIConfig
from coreset_lab.errors import UserError
from coreset_lab.registry import import_all, lookup, registered

import_all("coreset_lab.clustering")  # every method registers at its definition
METHODS = tuple(registered("clustering"))


@dataclass
class Clustering:
    labels: np.ndarray  # int64 [N] pseudo-labels in 0..k-1
    centroids: np.ndarray | None  # float32 [k, d] (k-means) or None (TEMI, oracle)
    info: dict = field(default_factory=dict)  # method, k, objective/loss, head, seconds, ...


def _method(cfg) -> type[ClusteringMethod]:
    if not isinstance(cfg, Mapping):
        raise UserError(f"clustering config must be a mapping, got {type(cfg).__name__}")
    return lookup("clustering", cfg.get("method"), "clustering.method")


def reads_labels(cfg) -> bool:
    """Whether the clustering named by `cfg` (a dict or DictConfig of conf/clustering/*.yaml)
    reads ground-truth labels. Decided by the method, never by a config flag."""
    return _method(cfg).reads_truth


def parse_config(cfg) -> ClusteringMethod:
    """The method's options, every refusal of a clustering config in one place."""
    return _method(cfg).from_dict(dict(cfg))


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
    method = parse_config(cfg)
    if method.reads_truth and truth is None:
        raise ValueError(f"clustering.method={method.name} reads the ground truth: pass truth=")
    if not method.reads_truth and truth is not None:
        raise ValueError(f"clustering.method={method.name} is label-free: it is never given labels")
    own_k = getattr(method, "num_clusters", None)  # the oracle has none: k = the number of classes
    k = num_clusters if own_k is None else own_k
    return Clustering(*method.run(embeddings, k, seed, truth))


__all__ = [
    "METHODS",
    "Clustering",
    "ClusteringMethod",
    "KMeansConfig",
    "OracleConfig",
    "TEMIConfig",
    "cluster",
    "cluster_metrics",
    "hungarian_accuracy",
    "knn",
    "parse_config",
    "reads_labels",
]
