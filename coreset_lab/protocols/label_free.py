"""The label-free stages shared by ELFS and its baselines: embeddings, then pseudo-labels.

Both are artifacts of the store, keyed by what determines them (data, encoder, clustering, seed),
and neither reads a ground-truth label. Cluster quality against the true labels is computed
afterwards, for the report only.

The one exception is the DIAGNOSTIC `clustering=oracle` (`reads_labels(clustering)`): its
pseudo-labels are the ground-truth train labels with noise, passed to it explicitly here; the run
logs a warning and its clustering info says `"reads_ground_truth": true`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path, PurePath

import numpy as np
from omegaconf import OmegaConf

from coreset_lab.clustering import cluster, cluster_metrics, reads_labels
from coreset_lab.clustering.backend import resolve_backend
from coreset_lab.data.base import DataBundle
from coreset_lab.embedding import compute_embeddings
from coreset_lab.errors import UserError
from coreset_lab.services.context import RunContext
from coreset_lab.store.artifacts import digest

log = logging.getLogger(__name__)


def plain(node) -> dict:
    return (
        OmegaConf.to_container(node, resolve=True)
        if OmegaConf.is_config(node)
        else dict(node or {})
    )


# Encoder options that change where or how fast it runs, not its embeddings; the method identity
# and the embeddings' store key both leave them out (a frozen encoder's batch size only batches
# inference; SimCLR's is its contrastive batch, which changes what it learns).
ENCODER_SPEED_ONLY = frozenset({"num_workers", "progress", "release"})
# Where it runs: in the store key (results differ by device), not in the method identity.
ENCODER_PLACEMENT = frozenset({"device", "accelerator"})
ENCODER_FILES = ("weights", "path", "ids")  # a weights file; precomputed embeddings and ids


def encoder_fields(encoder: dict, file_names: bool = False) -> dict:
    """The encoder options that determine its embeddings. `file_names`: a file enters by its
    name (the method identity: the same file mounted elsewhere is the same method), else by its
    path (the store key, which adds the file's identity)."""
    drop = ENCODER_SPEED_ONLY | (set() if encoder.get("kind") == "simclr" else {"batch_size"})
    if file_names:
        drop |= ENCODER_PLACEMENT
    out = {k: v for k, v in encoder.items() if k not in drop}
    if file_names:
        for key in ENCODER_FILES:
            if isinstance(out.get(key), str) and out[key] not in ("", "???"):
                out[key] = PurePath(out[key]).name
    return out


def embeddings(ctx: RunContext, encoder: dict) -> tuple[np.ndarray, str]:
    """The train set's [N, d] embeddings (memory-mapped) and their artifact key."""
    fields = ctx.config_spec(encoder_fields(encoder))
    if encoder.get("kind") == "precomputed":
        # Nothing to compute, so nothing to store (a copy of an ImageNet-sized file would be
        # gigabytes): read in place, keyed by the files' identities and the data's.
        spec = {"encoder": fields, "data": ctx.data_id}
        with ctx.stage("embed"):
            return compute_embeddings(encoder, ctx.data), f"precomputed-{digest(spec)}"
    spec = {
        "dataset": ctx.config_spec(ctx.spec.dataset),
        "data": ctx.data_id,
        "encoder": fields,
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
    unlabelled pool has none, and Elfs.check_unlabelled asks for num_clusters)."""
    return int(clustering.get("num_clusters") or data.num_classes)


def pseudo_labels(
    ctx: RunContext, clustering: dict, emb: np.ndarray | None, emb_key: str | None
) -> tuple[np.ndarray, dict]:
    """k-means / TEMI pseudo-labels with k = `pseudo_class_count`. Keyed by the embeddings'
    key, never by hashing the embeddings themselves.

    `clustering=oracle` reads the ground-truth train labels instead of the embeddings (`emb`
    may be None): keyed by the data (whose identity includes the labels), its config (noise)
    and `reads_ground_truth`."""
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
    check_filled(labels, k)
    return labels, info


def check_filled(labels: np.ndarray, k: int) -> None:
    """Refuse pseudo-labels of one class (constant or all-zero embeddings put every sample in
    one cluster: nothing to learn or to stratify by); say so when some clusters stayed empty."""
    filled = np.unique(labels).size
    if filled < 2:
        raise UserError(
            f"the clustering put all {labels.size} samples in 1 of its {k} clusters: the "
            f"embeddings do not tell the samples apart (constant or all zero?); check the encoder"
        )
    if filled < k:
        log.warning("only %d of the %d clusters are non-empty: %d pseudo-classes", filled, k,
                    filled)  # fmt: skip


def quality_report(pseudo: np.ndarray, true: np.ndarray, info: dict) -> dict:
    """How good the pseudo-labels are (Hungarian accuracy, NMI, ARI): reported, never used."""
    metrics = {k: round(float(v), 4) for k, v in cluster_metrics(pseudo, true).items()}
    return {**metrics, "method": info.get("method"), "k": int(pseudo.max()) + 1}
