"""In-memory splits kept on the training device, uploaded once per process.

A fold model, a stage model and the target model of one run train on the same split: the uint8
tensor goes to the GPU once (CIFAR-10: 150 MB) and every batch is an index gather there.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from coreset_lab.data.base import TensorImageSet, collate_batch

_ON_DEVICE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def resident_images(dataset: TensorImageSet, device: torch.device) -> torch.Tensor:
    """The split's uint8 [N, C, H, W] images on `device` (the same tensor on later calls)."""
    device = torch.device(device)
    if device.type == "cpu":
        return dataset.images
    per_device = _ON_DEVICE.setdefault(dataset, {})
    if str(device) not in per_device:
        per_device[str(device)] = dataset.images.to(device, non_blocking=True)
    return per_device[str(device)]


def eval_batches(
    dataset: Dataset,
    device: torch.device,
    indices: np.ndarray | None = None,
    batch_size: int = 1024,
    num_workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs on `device`, dataset indices on the CPU) over `indices` (all items if None), in
    order. In-memory splits are sliced where they live; file-backed ones go through a loader."""
    if isinstance(dataset, TensorImageSet):
        images = resident_images(dataset, device)
        order = torch.arange(len(dataset)) if indices is None else torch.as_tensor(indices)
        for chunk in order.split(batch_size):
            yield images[chunk.to(images.device)], chunk
        return
    subset = dataset if indices is None else Subset(dataset, np.asarray(indices).tolist())
    loader = DataLoader(
        subset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_batch,
        num_workers=num_workers,
        pin_memory=torch.device(device).type == "cuda",
    )
    for x, idx in loader:
        yield x.to(device, non_blocking=True), idx
