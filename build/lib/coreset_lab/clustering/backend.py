"""Which library and device run k-means and k-NN: faiss (CPU or GPU build) or torch.

`auto` never leaves a GPU machine's clustering on the CPU: faiss on the GPU when faiss was built
with GPU support (faiss-gpu), else torch on the GPU (clustering/torch_kmeans.py, torch_knn.py;
the pip faiss-cpu wheel has no GPU code), else faiss on the CPU. Without faiss at all, torch on
whatever device there is. `faiss` and `torch` force a library (tests compare the two).
"""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("auto", "faiss", "torch")


@dataclass(frozen=True)
class Backend:
    library: str  # "faiss" or "torch"
    device: str  # "cpu" or "cuda"

    @property
    def name(self) -> str:  # faiss-gpu, faiss-cpu, torch-cuda, torch-cpu: recorded in info
        if self.library == "faiss":
            return "faiss-gpu" if self.device == "cuda" else "faiss-cpu"
        return f"torch-{self.device}"

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"


def faiss_importable() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken CUDA setup counts as none
        return False


def faiss_gpu_available() -> bool:
    """True when faiss has GPU support and a CUDA device is visible (checked through torch)."""
    import faiss

    if not hasattr(faiss, "StandardGpuResources"):
        return False
    try:
        return cuda_available() and faiss.get_num_gpus() > 0
    except Exception:  # a broken CUDA setup: not usable
        return False


def resolve_backend(backend: str = "auto") -> Backend:
    """The library and device that `backend` (auto, faiss, torch) means on this machine."""
    if backend not in BACKENDS:
        raise ValueError(f"clustering backend must be one of {', '.join(BACKENDS)}: {backend!r}")
    cuda = "cuda" if cuda_available() else "cpu"
    if backend == "torch":
        return Backend("torch", cuda)
    if backend == "faiss":
        return Backend("faiss", "cuda" if faiss_gpu_available() else "cpu")
    if not faiss_importable():
        return Backend("torch", cuda)
    if faiss_gpu_available():
        return Backend("faiss", "cuda")
    return Backend("torch", "cuda") if cuda == "cuda" else Backend("faiss", "cpu")
