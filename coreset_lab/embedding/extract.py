"""Run a frozen feature function over a dataset in order and collect a float numpy matrix."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from coreset_lab.data.base import TensorImageSet, collate_batch
from coreset_lab.errors import UserError
from coreset_lab.progress import Progress

EMBED_DTYPES = {"float32": np.float32, "float16": np.float16}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(str(device))
    except RuntimeError as e:
        raise UserError(f"encoder.device: not a device: {device!r} (use auto, cpu or cuda)") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"encoder.device={device} but CUDA is not available; use auto or cpu")
    return resolved


def loader_workers(value: int | str, dataset: Dataset) -> int:
    """`auto`: none for an in-memory split (a batch is a slice), else one decoding process per
    CPU this job may use, up to 16 (JPEG decoding, not the encoder, bounds ImageNet's rate)."""
    if value != "auto":
        return int(value)
    if isinstance(dataset, TensorImageSet):
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(16, (cpus or 2) - 1))


def embed_dtype(name: str) -> type:
    if not isinstance(name, str) or name not in EMBED_DTYPES:
        raise UserError(f"encoder.embed_dtype must be one of {sorted(EMBED_DTYPES)}, got {name!r}")
    return EMBED_DTYPES[name]


def extract(
    features: Callable[[torch.Tensor], torch.Tensor],
    dataset: Dataset,
    *,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    num_workers: int | str = "auto",
    device: str | torch.device | None = "auto",
    dtype: type = np.float32,
    desc: str = "embedding",
    out_path: str | Path | None = None,
) -> np.ndarray:
    """``[len(dataset), d]`` features of every item, in dataset order.

    Items are (image, index) as every dataset here yields them; ``preprocess`` runs on the
    device on whole batches, then ``features`` under ``torch.inference_mode`` (and bf16 autocast
    on CUDA). Modules are put in eval mode. The result is float32 (or ``dtype``) on the CPU;
    with ``out_path`` it is written straight into that ``.npy`` file (memory-mapped), so host
    memory stays at a few batches whatever N is (ImageNet: 1.28 M x 768 floats = 3.9 GB).
    """
    dev = resolve_device(device)
    if isinstance(features, nn.Module):
        features = features.to(dev).eval()
    workers = loader_workers(num_workers, dataset)
    loader = DataLoader(
        dataset,
        batch_size=int(batch_size),
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_batch,
        pin_memory=dev.type == "cuda",
        prefetch_factor=4 if workers else None,  # decoded batches queued ahead of the GPU
    )
    n = len(dataset)
    out: np.ndarray | None = None
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if dev.type == "cuda"
        else contextlib.nullcontext()
    )
    seen = 0
    bar = Progress(f"embedding {n} train images ({desc})", n, unit="img")
    with torch.inference_mode(), autocast, bar:
        for x, idx in loader:
            x = x.to(dev, non_blocking=True)
            if preprocess is not None:
                x = preprocess(x)
            z = features(x)
            if z.dim() != 2:
                z = z.flatten(1)
            z = z.float().cpu().numpy()
            if out is None:
                out = _allocate((n, z.shape[1]), dtype, out_path)
            idx = idx.numpy()
            if len(idx) and (idx[0] != seen or idx[-1] != seen + len(idx) - 1):
                raise RuntimeError(f"{desc}: the loader is not in dataset order at item {seen}")
            out[seen : seen + len(z)] = z
            # Checked as written (after the cast to `dtype`): no second pass over a file of GBs.
            if not np.isfinite(out[seen : seen + len(z)]).all():
                hint = " (float16 overflow? use encoder.embed_dtype=float32)"
                hint = hint if dtype != np.float32 else ""
                raise UserError(f"{desc}: the encoder produced NaN or infinite features{hint}")
            seen += len(z)
            bar.update(len(z))
    if out is None:
        raise UserError(f"{desc}: the dataset is empty")
    if isinstance(out, np.memmap):
        out.flush()
    return out


def _allocate(shape: tuple[int, int], dtype, out_path) -> np.ndarray:
    if out_path is None:
        return np.empty(shape, dtype=dtype)
    return np.lib.format.open_memmap(out_path, mode="w+", dtype=dtype, shape=shape)
