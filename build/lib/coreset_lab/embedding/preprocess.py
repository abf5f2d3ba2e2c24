"""Batch preprocessing for embedding: back to [0, 1] pixels, then what a pretrained encoder expects.

Batches arrive as the dataset yields them: uint8 ``[B, C, H, W]`` from tensor sets, or float
tensors already normalised with the bundle's mean/std from file sets. For pretrained encoders we
follow ELFS's ``gen_embeds``: ``Resize(224, bicubic)`` (short side; a centre crop makes non-square
images square), ``ToTensor`` and the ImageNet mean/std, in eval mode, without augmentation.
Grey images are repeated to three channels, as PIL's ``convert("RGB")`` would.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stats(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=like.device).view(1, -1, 1, 1)


def to_unit(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """A batch as float pixels in [0, 1]: uint8 / 255, or a float batch with (mean, std) undone."""
    if x.dtype == torch.uint8:
        return x.float().div_(255)
    return x.float() * _stats(std, x) + _stats(mean, x)


def _bicubic(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    return TF.resize(x, size, interpolation=InterpolationMode.BICUBIC, antialias=True)


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of the short side to ``size``, then a centre crop to ``size`` x ``size``.

    Matches PIL's bicubic (what ELFS's ``Resize(224, bicubic)`` runs) to about one grey level:
    uint8 input uses torchvision's PIL-compatible uint8 kernel; float input in [0, 1] is resized
    width first, then height, clamped after each pass as PIL does.
    """
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if min(h, w) != size:
        new_h, new_w = (size, round(w * size / h)) if h <= w else (round(h * size / w), size)
        if x.dtype == torch.uint8:
            x = _bicubic(x, [new_h, new_w])
        else:
            x = _bicubic(x, [h, new_w]).clamp_(0, 1)
            x = _bicubic(x, [new_h, new_w]).clamp_(0, 1)
    if tuple(x.shape[-2:]) != (size, size):
        x = TF.center_crop(x, [size, size])
    return x


def pretrained_input(
    x: torch.Tensor,
    image_size: int,
    data_mean: Sequence[float],
    data_std: Sequence[float],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """What an ImageNet-pretrained encoder takes: float [B, 3, image_size, image_size]."""
    if x.shape[1] not in (1, 3):
        raise ValueError(f"pretrained encoders take 1- or 3-channel images, got {x.shape[1]}")
    if x.dtype == torch.uint8:
        x = resize_square(x, image_size).float().div_(255)
    else:
        x = resize_square(to_unit(x, data_mean, data_std), image_size)
    if x.shape[1] == 1:  # grey -> RGB after resizing: a third of the work
        x = x.expand(-1, 3, -1, -1)
    return (x - _stats(mean, x)) / _stats(std, x)


def pixel_input(
    x: torch.Tensor, data_mean: Sequence[float], data_std: Sequence[float], pool: int = 1
) -> torch.Tensor:
    """Flattened [0, 1] pixels, after ``pool`` x ``pool`` average pooling when pool > 1."""
    x = to_unit(x, data_mean, data_std)
    if pool > 1:
        x = F.avg_pool2d(x, pool, ceil_mode=True)
    return x.flatten(1)


def dataset_input(
    x: torch.Tensor, data_mean: Sequence[float], data_std: Sequence[float]
) -> torch.Tensor:
    """The dataset's own normalisation (what the models trained here see)."""
    if x.dtype != torch.uint8:
        return x.float()
    return (x.float().div_(255) - _stats(data_mean, x)) / _stats(data_std, x)
