"""What the torch k-means and k-NN share: exact float32 products and bounded-memory blocks."""

from __future__ import annotations

import contextlib

import torch

# Elements of one [rows, N] (or [rows, k]) score block: 2^27 floats = 512 MiB.
BLOCK_ELEMENTS = 1 << 27


@contextlib.contextmanager
def full_precision():
    """float32 matrix products in full float32: TF32 (10-bit mantissa) would reorder near-tied
    neighbours and shift k-means assignments, and the results must agree with faiss."""
    previous = torch.get_float32_matmul_precision()
    cudnn = torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)
        torch.backends.cudnn.allow_tf32 = cudnn


def block_rows(columns: int, limit: int | None = None) -> int:
    """Rows per block so that a [rows, columns] float32 block stays within BLOCK_ELEMENTS."""
    rows = max(1, BLOCK_ELEMENTS // max(1, columns))
    return rows if limit is None else max(1, min(rows, int(limit)))
