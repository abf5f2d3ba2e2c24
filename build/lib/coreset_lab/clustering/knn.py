"""Cosine k-nearest neighbours, exact, in bounded memory.

Used by TEMI (pairs of neighbours) and by the D2 selector (its k-NN graph). The embeddings are
L2-normalised and searched exactly by inner product: faiss' `IndexFlatIP` (on the GPU with
faiss-gpu), or on a GPU without faiss-gpu the same search in torch (torch_knn.py); see
backend.py for the choice. Queries go in chunks, so memory is O(chunk * k) besides the index
itself: no [N, N] similarity matrix is ever built.
"""

from __future__ import annotations

import numpy as np

from coreset_lab.clustering.backend import Backend, faiss_gpu_available, resolve_backend

__all__ = ["as_float32", "faiss_gpu_available", "knn", "l2_normalize"]


def as_float32(x: np.ndarray, name: str = "embeddings") -> np.ndarray:
    """`x` as a C-contiguous float32 [N, d] array with finite values (what faiss needs)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [N, d], got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return x


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero); float32, C-contiguous, a copy."""
    x = as_float32(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def knn(
    x: np.ndarray, k: int, *, chunk_size: int = 8192, backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar other samples of every sample.

    Returns (indices int64 [N, k], similarities float32 [N, k]), most similar first, the sample
    itself excluded. With exact duplicates the sample may tie with a copy of itself; it is still
    removed by index, so a duplicate counts as a neighbour with similarity 1. `backend`: auto,
    faiss or torch (backend.py).
    """
    x = l2_normalize(x)
    n, d = x.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n - 1:
        raise ValueError(f"knn: k must be an integer in [1, N-1] = [1, {n - 1}], got {k!r}")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"knn: chunk_size must be a positive integer, got {chunk_size!r}")
    k = int(k)
    search = _searcher(x, resolve_backend(backend))

    out_idx = np.empty((n, k), dtype=np.int64)
    out_sim = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, int(chunk_size)):
        stop = min(n, start + int(chunk_size))
        sims, ids = search(start, stop, k + 1)
        rows = np.arange(start, stop)[:, None]
        drop = ids == rows
        # Self not among the k+1 (ties with duplicates): drop the least similar instead.
        missing = ~drop.any(axis=1)
        drop[missing, -1] = True
        keep = ~drop
        out_idx[start:stop] = ids[keep].reshape(stop - start, k)
        out_sim[start:stop] = sims[keep].reshape(stop - start, k)
    return out_idx, out_sim


def _searcher(x: np.ndarray, backend: Backend):
    """search(start, stop, k) -> (similarities, indices) of rows start..stop of `x` against all
    of `x`, on `backend`."""
    if backend.library == "torch":
        from coreset_lab.clustering.torch_knn import TorchFlatIP

        return TorchFlatIP(x, backend.device).search
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    resources = faiss.StandardGpuResources() if backend.gpu else None
    if resources is not None:
        index = faiss.index_cpu_to_gpu(resources, 0, index)
    index.add(x)

    def search(start: int, stop: int, k: int):
        _ = resources  # the GPU index must not outlive its resources
        return index.search(x[start:stop], k)

    return search
