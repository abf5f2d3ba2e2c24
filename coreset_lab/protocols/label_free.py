"""The label-free stages shared by ELFS and its baselines: embeddings, then pseudo-labels.

Both are artifacts of the store, keyed by what determines them (data, encoder, clustering, seed),
and neither reads a ground-truth label. Cluster quality against the true labels is computed
afterwards, for the report only.

The one exception is the DIAGNOSTIC `clustering=oracle` (`reads_labels(cfg.clustering)`): its
pseudo-labels are the ground-truth train labels with noise, passed to it explicitly here; the run
logs a warning and its clustering info says `"reads_ground_truth": true`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from coreset_lab.clustering import cluster, cluster_metrics, reads_labels
from coreset_lab.clustering.backend import resolve_backend
from coreset_lab.data.base import DataBundle
from coreset_lab.embedding import compute_embeddings
from coreset_lab.services.context import RunContext
from coreset_lab.store.artifacts import digest

log = logging.getLogger(__name__)


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def embeddings(ctx: RunContext) -> tuple[np.ndarray, str]:
    """The train set's [N, d] embeddings (memory-mapped) and their artifact key."""
    encoder = _plain(ctx.cfg.encoder)
    if encoder.get("kind") == "precomputed":
        # Nothing to compute, so nothing to store (a copy of an ImageNet-sized file would be
        # gigabytes): read in place, keyed by the files' identities and the data's.
        spec = {"encoder": ctx.config_spec(ctx.cfg.encoder), "data": ctx.data_id}
        with ctx.stage("embed"):
            return compute_embeddings(encoder, ctx.data), f"precomputed-{digest(spec)}"
    spec = {
        "dataset": ctx.config_spec(ctx.cfg.dataset),
        "data": ctx.data_id,
        "encoder": ctx.config_spec(ctx.cfg.encoder),
        "seed": ctx.seed,
    }

    def build(path: Path) -> None:
        compute_embeddings(encoder, ctx.data, seed=ctx.seed, out_path=path / "embeddings.npy")

    with ctx.stage("embed"):
        path = ctx.store.get_or_build("embedding", spec, build)
        # Memory-mapped: at ImageNet scale the stages after this read it in chunks or once.
        return np.load(path / "embeddings.npy", mmap_mode="r"), path.name


def pseudo_class_count(clustering, data: DataBundle) -> int:
    """k: `clustering.num_clusters`, else the class count (ELFS assumes it is known; an
    unlabelled pool has none, and validate.py asks for num_clusters)."""
    return int(clustering.get("num_clusters") or data.num_classes)


def pseudo_labels(
    ctx: RunContext, emb: np.ndarray | None, emb_key: str | None
) -> tuple[np.ndarray, dict]:
    """k-means / TEMI pseudo-labels with k = `pseudo_class_count`. Keyed by the embeddings'
    key, never by hashing the embeddings themselves.

    `clustering=oracle` reads the ground-truth train labels instead of the embeddings (`emb`
    may be None): keyed by the data (whose identity includes the labels), its config (noise)
    and `reads_ground_truth`."""
    clustering = _plain(ctx.cfg.clustering)
    oracle = reads_labels(clustering)
    if oracle:
        spec = {"data": ctx.data_id, "reads_ground_truth": True}
    else:
        # faiss-cpu, faiss-gpu and torch (GPU) find different local optima: the library and
        # device enter the key (the store's own device is the trainer's, not this one).
        spec = {"embedding": emb_key, "backend": resolve_backend("auto").name}
    k = pseudo_class_count(clustering, ctx.data)
    spec.update(clustering=clustering, k=k, seed=ctx.seed)
    truth = {"truth": ctx.data.train_targets} if oracle else {}

    def build(path: Path) -> None:
        result = cluster(emb, k, clustering, seed=ctx.seed, **truth)
        np.save(path / "pseudo_labels.npy", result.labels.astype(np.int64))
        (path / "info.json").write_text(json.dumps(result.info, default=str))

    if oracle:
        log.warning(
            "DIAGNOSTIC: clustering=%s reads GROUND-TRUTH labels to choose the coreset "
            "(pseudo-labels = train labels, noise %s): not a label-free result",
            clustering.get("method"),
            clustering.get("noise", 0.0),
        )
    with ctx.stage("cluster"):
        path = ctx.store.get_or_build("clustering", spec, build)
        labels = np.load(path / "pseudo_labels.npy")
        info = json.loads((path / "info.json").read_text())
    return labels, info


def quality_report(pseudo: np.ndarray, true: np.ndarray, info: dict) -> dict:
    """How good the pseudo-labels are (Hungarian accuracy, NMI, ARI): reported, never used."""
    metrics = {k: round(float(v), 4) for k, v in cluster_metrics(pseudo, true).items()}
    return {**metrics, "method": info.get("method"), "k": int(pseudo.max()) + 1}
