"""Lloyd's k-means in torch, for a GPU without faiss-gpu (and on the CPU in tests).

It runs what kmeans.py asks faiss for: every point in every iteration (no subsampling),
`n_init` restarts of `niter` iterations each, the restart with the lowest objective kept;
`spherical` re-normalises the centroids after every update (with unit-norm points, assigning by
the smallest L2 distance is then assigning by the largest inner product, as faiss does).

Initialisation draws its random numbers from a CPU generator, so a seed gives the same seeds on
every device (up to rounding). `kmeans++` is exact (a pass over the N points per centroid, cheap
on a GPU); `afk-mc2`, faiss' MCMC approximation of k-means++ for when that pass is too costly on
a CPU, is run as the exact k-means++ it approximates. An empty cluster takes the point farthest
from its centroid. Sums are accumulated in float64, so the order of the GPU's atomic additions
does not change the float32 centroids.
"""

from __future__ import annotations

import numpy as np
import torch

from coreset_lab.clustering.torch_ops import block_rows, full_precision


def torch_kmeans(
    x: np.ndarray,
    k: int,
    *,
    spherical: bool,
    n_init: int,
    niter: int,
    init: str,
    seed: int,
    device: str | torch.device,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(labels int64 [N], centroids float32 [k, d], the init used) of the best restart."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    used = "random" if init == "random" else "kmeans++"
    best = None
    with torch.no_grad(), full_precision():
        for restart in range(int(n_init)):
            gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + restart)
            c = _random_init(xt, k, gen) if used == "random" else _kmeans_pp(xt, k, gen)
            labels, dist, c = lloyd(xt, c, niter, spherical)
            objective = float(dist.double().sum())
            if best is None or objective < best[0]:
                best = (objective, labels, c)
    _, labels, c = best
    return labels.cpu().numpy().astype(np.int64), c.float().cpu().numpy(), used


def lloyd(x: torch.Tensor, c: torch.Tensor, niter: int, spherical: bool):
    """`niter` Lloyd iterations from centroids `c`, then the final assignment:
    (labels [N], squared distances [N], centroids [k, d])."""
    c = _unit(c) if spherical else c
    for _ in range(int(niter)):
        labels, dist = assign(x, c)
        c = _update(x, labels, dist, c, spherical)
    labels, dist = assign(x, c)
    return labels, dist, c


def assign(x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every point and its squared distance, in blocks of rows."""
    c_sq = (c * c).sum(dim=1)
    labels, dists = [], []
    step = block_rows(c.shape[0], 65536)
    for lo in range(0, x.shape[0], step):
        xb = x[lo : lo + step]
        d = (xb * xb).sum(dim=1, keepdim=True) - 2.0 * (xb @ c.T) + c_sq
        dist, lab = d.min(dim=1)
        labels.append(lab)
        dists.append(dist.clamp_min(0.0))
    return torch.cat(labels), torch.cat(dists)


def _update(x, labels, dist, c, spherical: bool) -> torch.Tensor:
    k, d = c.shape
    sums = torch.zeros(k, d, dtype=torch.float64, device=x.device)
    step = block_rows(d, 65536)
    for lo in range(0, x.shape[0], step):
        sums.index_add_(0, labels[lo : lo + step], x[lo : lo + step].double())
    counts = torch.bincount(labels, minlength=k)
    new = (sums / counts.clamp_min(1)[:, None]).float()
    empty = torch.nonzero(counts == 0).flatten()
    if empty.numel():  # reseed at the points worst served by their centroids
        far = torch.topk(dist, min(empty.numel(), x.shape[0])).indices
        new[empty[: far.numel()]] = x[far]
    return _unit(new) if spherical else new


def _unit(c: torch.Tensor) -> torch.Tensor:
    return c / c.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _random_init(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k distinct points, uniformly (faiss' default init)."""
    pick = torch.randperm(x.shape[0], generator=gen)[:k]
    return x[pick.to(x.device)].clone()


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ (Arthur and Vassilvitskii): each next centroid drawn with probability
    proportional to the squared distance to the nearest centroid so far. No host round trip
    per centroid: the uniform draws are made up front, the pick is a search on the device."""
    n = x.shape[0]
    x_sq = (x * x).sum(dim=1)
    draws = torch.rand(k, generator=gen, dtype=torch.float64).to(x.device)
    pick = torch.randint(n, (1,), generator=gen).to(x.device)
    picks = [pick]
    d2 = _sq_dist(x, x_sq, pick)
    for j in range(1, k):
        cum = torch.cumsum(d2.double(), dim=0)
        # The first point whose cumulative weight exceeds the draw (never a zero-weight point;
        # all weights zero, fewer distinct points than k: the last point).
        pick = torch.searchsorted(cum, draws[j : j + 1] * cum[-1], right=True).clamp_max(n - 1)
        picks.append(pick)
        d2 = torch.minimum(d2, _sq_dist(x, x_sq, pick))
    return x[torch.cat(picks)].clone()


def _sq_dist(x: torch.Tensor, x_sq: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
    """Squared distances of every point to the point `pick` ([1] index), without an [N, d] temp."""
    c = x[pick]  # [1, d]
    return (x_sq - 2.0 * (x @ c.T)[:, 0] + (c * c).sum()).clamp_min(0.0)
