"""Predictions of a trained model on un-augmented inputs, in eval mode."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from coreset_lab.data.base import collate_batch
from coreset_lab.training.module import ClassifierModule


@torch.inference_mode()
def predict_probs(
    module: ClassifierModule, dataset, batch_size: int = 512, num_workers: int = 0
) -> np.ndarray:
    """Softmax outputs [N, C] (float32) over ``dataset`` in its own order."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    module = module.to(device).eval()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_batch,
        num_workers=num_workers,
    )
    out = []
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        for x, _ in loader:
            out.append(module(x.to(device, non_blocking=True)).float().softmax(1).cpu())
    return torch.cat(out).numpy()


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())
