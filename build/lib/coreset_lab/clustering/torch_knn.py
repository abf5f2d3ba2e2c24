"""Exact inner-product search in torch (faiss' `IndexFlatIP` for a GPU without faiss-gpu).

The database lives on the device; queries go in blocks whose [rows, N] score matrix stays within
a fixed memory budget (torch_ops.BLOCK_ELEMENTS), whatever N is. Among equal scores the lower
index comes first (as a stable sort would give), so the order of the results does not depend on
the device or on how the queries were blocked.
"""

from __future__ import annotations

import numpy as np
import torch

from coreset_lab.clustering.torch_ops import block_rows, full_precision


class TorchFlatIP:
    """`search(start, stop, k)`: the k highest inner products of rows start..stop of `x` with
    every row of `x` (itself included), as numpy (similarities float32, indices int64)."""

    def __init__(self, x: np.ndarray, device: str | torch.device):
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)

    def search(self, start: int, stop: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = self.x.shape[0]
        sims, ids = [], []
        with torch.no_grad(), full_precision():
            for lo in range(start, stop, block_rows(n)):
                hi = min(stop, lo + block_rows(n))
                s, i = _top(self.x[lo:hi] @ self.x.T, k)
                sims.append(s.cpu())
                ids.append(i.cpu())
        return torch.cat(sims).numpy(), torch.cat(ids).numpy().astype(np.int64)


def _top(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest scores per row, highest first, ties by increasing index."""
    s, i = torch.topk(scores, k, dim=1, sorted=True)
    i, by_id = torch.sort(i, dim=1)  # ties: lower index first after the stable sort below
    s = torch.gather(s, 1, by_id)
    s, order = torch.sort(s, dim=1, descending=True, stable=True)
    return s, torch.gather(i, 1, order)
