"""k-means on embeddings: faiss, or torch on a GPU without faiss-gpu (backend.py decides).

Every point takes part in training: faiss otherwise subsamples to `max_points_per_centroid`
(256) points per centroid, so `max_points_per_centroid` is set to ceil(N / k) + 1. With
`normalize` the embeddings are L2-normalised first (the usual choice for SSL features); with
`spherical` the centroids are re-normalised after every iteration and points are assigned by
inner product (cosine), which is the same assignment as L2 once both sides have unit norm.

Initialisation: faiss' default is k random points, which often puts two seeds in one cluster
and loses another; `init: afk-mc2` (default, an MCMC approximation of k-means++ whose cost
does not grow with N*k) or `kmeans++` (exact, O(N k d) on the CPU: fine for CIFAR, slow for
ImageNet with k = 1000) fix that. A faiss without `init_method` (older than about 1.13) falls
back to random with a warning; `info["init"]` records what was used. The torch backend
(torch_kmeans.py) runs the same algorithm, with afk-mc2 replaced by the exact k-means++ it
approximates; `info["backend"]` records which library and device ran.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from coreset_lab.clustering.backend import resolve_backend
from coreset_lab.clustering.knn import as_float32, l2_normalize
from coreset_lab.clustering.options import ClusteringMethod, parse_options
from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.values import check_choice, check_int

log = logging.getLogger(__name__)

INITS = {"afk-mc2": "AFK_MC2", "kmeans++": "KMEANS_PLUS_PLUS", "random": "RANDOM"}


@register("clustering")
@dataclass
class KMeansConfig(ClusteringMethod):
    name: ClassVar[str] = "kmeans"
    num_clusters: int | None = None
    spherical: bool = True
    normalize: bool = True
    n_init: int = 5
    niter: int = 50
    init: str = "afk-mc2"

    @classmethod
    def from_dict(cls, cfg: dict) -> KMeansConfig:
        out = parse_options(cls, cfg, "kmeans")
        for key in ("spherical", "normalize"):
            value = getattr(out, key)
            if not isinstance(value, (bool, np.bool_)):
                raise UserError(f"clustering.{key} must be true or false, got {value!r}")
        check_int(out.n_init, "clustering.n_init", 1)
        check_int(out.niter, "clustering.niter", 1)
        check_choice(out.init, "clustering.init", tuple(INITS))
        return out

    def run(self, embeddings, k, seed, truth=None):
        return run_kmeans(
            embeddings,
            k,
            spherical=self.spherical,
            normalize=self.normalize,
            n_init=self.n_init,
            niter=self.niter,
            init=self.init,
            seed=seed,
        )


def run_kmeans(
    embeddings: np.ndarray,
    k: int,
    *,
    spherical: bool = True,
    normalize: bool = True,
    n_init: int = 5,
    niter: int = 50,
    init: str = "afk-mc2",
    seed: int = 0,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray, dict]:
    """k-means: (labels int64 [N], centroids float32 [k, d], info).

    The centroids live in the space that was clustered (unit sphere when `normalize`). `info`
    holds the objective of the kept run (sum of squared distances to the assigned centroid in
    that space), the run time, the backend (auto, faiss or torch: see backend.py) and whether a
    GPU was used.
    """
    x = l2_normalize(embeddings) if normalize else as_float32(embeddings)
    n = x.shape[0]
    k = check_int(k, "clustering.num_clusters", 1, n)
    init = check_choice(init, "clustering.init", tuple(INITS))
    chosen = resolve_backend(backend)
    options = dict(spherical=bool(spherical), n_init=int(n_init), niter=int(niter), seed=int(seed))
    start = time.perf_counter()
    if chosen.library == "torch":
        from coreset_lab.clustering.torch_kmeans import torch_kmeans

        labels, centroids, init = torch_kmeans(x, k, init=init, device=chosen.device, **options)
    else:
        labels, centroids, init = _faiss_kmeans(x, k, init=init, gpu=chosen.gpu, **options)
    info = {
        "method": "kmeans",
        "k": k,
        "objective": objective(x, labels, centroids),
        "spherical": bool(spherical),
        "normalize": bool(normalize),
        "n_init": int(n_init),
        "niter": int(niter),
        "init": init,
        "backend": chosen.name,
        "gpu": chosen.gpu,
        "seconds": time.perf_counter() - start,
    }
    return labels, centroids, info


def _faiss_kmeans(x, k, *, spherical, n_init, niter, init, seed, gpu):
    """faiss' k-means with every point used; (labels, centroids, the init used)."""
    import faiss

    extra = {}
    if init != "random":
        if hasattr(faiss.ClusteringParameters(), "init_method"):
            extra["init_method"] = getattr(faiss, "ClusteringInitMethod_" + INITS[init])
        else:
            log.warning("this faiss has no k-means init_method: clustering.init=%s -> random", init)
            init = "random"
    n, d = x.shape
    km = faiss.Kmeans(
        d,
        k,
        niter=niter,
        nredo=n_init,
        seed=seed,
        spherical=spherical,
        max_points_per_centroid=math.ceil(n / k) + 1,  # never subsample: use all N points
        min_points_per_centroid=1,  # small data is fine, no warning
        gpu=gpu,
        verbose=False,
        **extra,
    )
    km.train(x)
    centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    # Final assignment of every point against the final centroids.
    _, assign = km.index.search(x, 1)
    return assign[:, 0].astype(np.int64), centroids, init


def objective(x: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> float:
    """Sum of squared distances to the assigned centroids, in chunks (no second [N, d] copy)."""
    total = 0.0
    for rows in np.array_split(np.arange(x.shape[0]), max(1, x.shape[0] // 65536)):
        diff = x[rows] - centroids[labels[rows]]
        total += float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
    return total
