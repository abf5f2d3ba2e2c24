"""Pseudo-label quality and clustering time: k-means (faiss) vs scikit-learn k-means vs TEMI,
on the cached embeddings of each encoder. Ground truth is read only to score the clusters.

    python scripts/cluster_quality.py experiment=fmnist_elfs --encoders pca simclr --seeds 0 1 2
    python scripts/cluster_quality.py dataset=digits --encoders pca --seeds 0 --temi-epochs 5

Embeddings come from (or go into) the artifact store, as in a run with the same overrides.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import faiss
import numpy as np
import sklearn
import torch
from omegaconf import OmegaConf
from sklearn.cluster import KMeans

from coreset_lab.clustering import cluster, cluster_metrics
from coreset_lab.data import build_dataset
from coreset_lab.protocols.label_free import embeddings
from coreset_lab.run.config import CONF_DIR, compose_config
from coreset_lab.services.context import RunContext, open_store


def context(overrides: list[str], encoder: str, seed: int) -> tuple[RunContext, dict, dict]:
    """The run's context, its encoder node and its clustering node."""
    paths = ["paths.root_dir=.", "paths.output_dir=/tmp/cq"]
    cfg, _ = compose_config([*overrides, f"encoder={encoder}", f"seed={seed}", *paths])
    data, store = build_dataset(**cfg.dataset), open_store(cfg, time.time())
    nodes = (OmegaConf.to_container(cfg[k], resolve=True) for k in ("encoder", "clustering"))
    return RunContext.from_config(cfg, data, store, "/tmp/cq"), *nodes


def clusterings(emb, k, kmeans_cfg, temi_cfg, seed) -> dict:
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return {
        "faiss k-means": lambda: cluster(emb, k, kmeans_cfg, seed).labels,
        "sklearn k-means": lambda: KMeans(
            k, n_init=kmeans_cfg["n_init"], random_state=seed
        ).fit_predict(unit),
        "TEMI": lambda: cluster(emb, k, temi_cfg, seed).labels,
    }


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("overrides", nargs="*")
    p.add_argument("--encoders", nargs="+", default=["pca"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--temi-epochs", type=int, default=30)
    args = p.parse_args()
    rows: dict[tuple[str, str], list[tuple[dict, float]]] = {}
    for encoder in args.encoders:
        for seed in args.seeds:
            ctx, encoder_cfg, kmeans_cfg = context(args.overrides, encoder, seed)
            emb, truth = embeddings(ctx, encoder_cfg)[0], ctx.data.train_targets
            k = ctx.data.num_classes
            temi_cfg = {
                **OmegaConf.to_container(OmegaConf.load(f"{CONF_DIR}/clustering/temi.yaml")),
                "epochs": args.temi_epochs,
            }
            runs = clusterings(emb, k, kmeans_cfg, temi_cfg, seed)
            for name, run in runs.items():
                labels, seconds = timed(run)
                rows.setdefault((encoder, name), []).append(
                    (cluster_metrics(labels, truth), seconds)
                )
    print(
        f"hardware: {platform.machine()}, {torch.get_num_threads()} torch threads; faiss "
        f"{faiss.__version__}, scikit-learn {sklearn.__version__}; seeds {args.seeds}; "
        f"N={len(emb)}, d={emb.shape[1]}, k={k}"
    )
    print("| encoder | clustering | accuracy (%) | NMI | ARI | median seconds |")
    print("|---|---|---|---|---|---|")
    for (encoder, name), results in rows.items():

        def stat(key, results=results):
            vals = [m[key] for m, _ in results]
            return f"{np.mean(vals):.3f} ± {np.std(vals):.3f}"

        acc = [100 * m["accuracy"] for m, _ in results]
        print(
            f"| {encoder} | {name} | {np.mean(acc):.1f} ± {np.std(acc):.1f} | {stat('nmi')} | "
            f"{stat('ari')} | {statistics.median(s for _, s in results):.2f} |"
        )


if __name__ == "__main__":
    main()
