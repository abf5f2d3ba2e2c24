"""Predictions of a trained model on un-augmented inputs, in eval mode."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from coreset_lab.training.module import ClassifierModule
from coreset_lab.training.resident import eval_batches


def predict(
    module: ClassifierModule, dataset, batch_size: int = 1024, num_workers: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax outputs [N, C] (float32) over ``dataset`` in its own order, and the squared L2
    norm [N] of what enters the model's classifier (its last linear layer: the penultimate
    features h), read in the same pass. ||h||^2 is the factor of the last layer's gradient norm
    that GraNd needs; None for a model without a linear layer."""
    probs, norms, _ = _predict(module, dataset, batch_size, num_workers, keep_features=False)
    return probs, norms


def predict_with_features(
    module: ClassifierModule, dataset, batch_size: int = 1024, num_workers: int = 0
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """`predict`'s two outputs (the same values) and the penultimate features h themselves
    [N, d] (float32), read in the same pass: BADGE forms its gradient embeddings from them.
    None for a model without a linear layer."""
    return _predict(module, dataset, batch_size, num_workers, keep_features=True)


@torch.inference_mode()
def _predict(module: ClassifierModule, dataset, batch_size: int, num_workers: int,
             keep_features: bool):  # fmt: skip
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = module.to(device).eval()
    probs, norms, features = [], [], []

    def read_h(m, inputs, out):
        h = inputs[0].float()
        norms.append(h.pow(2).sum(1).cpu())
        if keep_features:
            features.append(h.cpu())

    linears = [m for m in module.model.modules() if isinstance(m, nn.Linear)]
    # The classifier is the last linear layer registered (small_cnn, ResNets, timm, torchvision).
    hook = linears[-1].register_forward_hook(read_h) if linears else None
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            for x, _ in eval_batches(
                dataset, device, batch_size=batch_size, num_workers=num_workers
            ):
                probs.append(module(x).float().softmax(1).cpu())
    finally:
        if hook is not None:
            hook.remove()
    return (
        torch.cat(probs).numpy(),
        torch.cat(norms).numpy() if norms else None,
        torch.cat(features).numpy() if features else None,
    )


def predict_probs(module: ClassifierModule, dataset, **kwargs) -> np.ndarray:
    return predict(module, dataset, **kwargs)[0]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())
