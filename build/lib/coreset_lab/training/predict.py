"""Predictions of a trained model on un-augmented inputs, in eval mode."""

from __future__ import annotations

import numpy as np
import torch

from coreset_lab.training.module import ClassifierModule
from coreset_lab.training.resident import eval_batches


@torch.inference_mode()
def predict_probs(
    module: ClassifierModule, dataset, batch_size: int = 1024, num_workers: int = 0
) -> np.ndarray:
    """Softmax outputs [N, C] (float32) over ``dataset`` in its own order."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = module.to(device).eval()
    out = []
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for x, _ in eval_batches(dataset, device, batch_size=batch_size, num_workers=num_workers):
            out.append(module(x).float().softmax(1).cpu())
    return torch.cat(out).numpy()


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())
