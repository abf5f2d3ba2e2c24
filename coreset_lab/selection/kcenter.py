"""k-center greedy (Sener & Savarese, ICLR 2018; the `kCenterGreedy` baseline of DeepCore):
farthest-point selection on the embeddings, label-free and blind to scores.

What DeepCore does (PatrickZH/DeepCore, deepcore/methods/kcentergreedy.py, `k_center_greedy`):
the first centre is drawn uniformly at random (`np.random.seed(random_seed)`, then
`np.random.randint(0, N)`), then it repeatedly adds the point whose Euclidean distance
(`euclidean_dist`, sqrt of the clamped expansion) to its nearest selected centre is largest
(`torch.argmax`, the first index on ties), updating that min-distance vector with the new centre
only, until the budget (first centre included) is met. It keeps a [budget, N] matrix of
distances; `balance=False` (one global pool) is its default.

What this class follows: the random first centre (drawn from the run's rng, `rng.integers(N)`),
the farthest-point rule, the first index on ties, the budget including the first centre.
What it changes: only the min-distance vector (N floats) is kept, and it is updated one chunk of
the pool at a time against the new centre ((x - c)^2 summed directly, in float32 on the device,
rather than the expansion ||x||^2 + ||c||^2 - 2 x.c), so an ImageNet pool (1.28M x 768) needs the
embeddings (3.9 GB in float32) plus a chunk; squared distances are compared, which ranks as the
distances. The scores and labels are not read.
"""

from __future__ import annotations

import numpy as np

from coreset_lab.registry import register
from coreset_lab.selection.budget import Selector
from coreset_lab.values import check_choice, check_int

DEVICES = ("auto", "cpu", "cuda")


@register("selector")
class KCenterGreedy(Selector):
    """Farthest-point greedy on the embeddings; exactly coreset_size(N, prune_rate) samples."""

    name = "kcenter"
    uses_scores = False
    needs = frozenset({"embeddings"})

    def __init__(
        self, prune_rate: float = 0.5, chunk_size: int = 65536, device: str = "auto"
    ) -> None:
        super().__init__(prune_rate)
        self.chunk_size = check_int(chunk_size, "selector.chunk_size", 1)
        self.device = check_choice(device, "selector.device", DEVICES)

    def select(self, scores, labels, k, rng, embeddings):
        n = len(scores)
        return k_center_greedy(embeddings, k, int(rng.integers(n)), self.chunk_size, self.device)


def _device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def k_center_greedy(
    embeddings: np.ndarray,
    budget: int,
    first: int,
    chunk_size: int = 65536,
    device: str = "auto",
) -> np.ndarray:
    """Indices of the `budget` centres in pick order, starting from `first`."""
    import torch

    n = embeddings.shape[0]
    if budget >= n:
        return np.arange(n, dtype=np.int64)
    dev = _device(device)
    # Copied chunk by chunk: a memory-mapped pool is never materialised twice.
    x = torch.empty(tuple(embeddings.shape), dtype=torch.float32, device=dev)
    for start in range(0, n, chunk_size):
        part = np.array(embeddings[start : start + chunk_size], dtype=np.float32)  # writable
        x[start : start + part.shape[0]] = torch.from_numpy(part).to(dev)
    mins = torch.full((n,), float("inf"), dtype=torch.float32, device=dev)
    order = np.empty(budget, dtype=np.int64)
    order[0] = centre = int(first)
    with torch.no_grad():
        for i in range(1, budget):
            c = x[centre]
            for start in range(0, n, chunk_size):
                near = mins[start : start + chunk_size]  # a view: updated in place
                d = ((x[start : start + chunk_size] - c) ** 2).sum(dim=1)
                torch.minimum(near, d, out=near)
            mins[centre] = -1.0  # picked: never again (duplicates of it are at distance 0)
            centre = int(torch.argmax(mins).item())
            order[i] = centre
    return order
