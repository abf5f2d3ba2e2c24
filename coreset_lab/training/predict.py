"""Predictions of a trained model on un-augmented inputs, in eval mode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from coreset_lab.training.module import ClassifierModule
from coreset_lab.training.resident import eval_batches


@dataclass
class Predictions:
    """What one eval-mode pass over a dataset reads of a model, in the dataset's order."""

    probs: np.ndarray  # [N, C] float32 softmax
    # [N] squared L2 norm of what enters the classifier (the last linear layer): the penultimate
    # features h. ||h||^2 is the factor of the last layer's gradient norm GraNd needs. None for
    # a model without a linear layer.
    feature_sqnorm: np.ndarray | None
    features: np.ndarray | None = None  # [N, d] float32 h itself, with keep_features (BADGE)


@torch.inference_mode()
def predict(
    module: ClassifierModule,
    dataset,
    batch_size: int = 1024,
    num_workers: int = 0,
    keep_features: bool = False,
) -> Predictions:
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
    batches = eval_batches(dataset, device, batch_size=batch_size, num_workers=num_workers)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            for x, _ in batches:
                probs.append(module(x).float().softmax(1).cpu())
    finally:
        if hook is not None:
            hook.remove()
    return Predictions(
        torch.cat(probs).numpy(),
        torch.cat(norms).numpy() if norms else None,
        torch.cat(features).numpy() if features else None,
    )


def predict_probs(module: ClassifierModule, dataset, **kwargs) -> np.ndarray:
    return predict(module, dataset, **kwargs).probs


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())
