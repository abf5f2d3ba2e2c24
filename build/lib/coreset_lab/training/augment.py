"""Batch transforms on the device: uint8 -> normalised float, random translate and flip.

Doing them on whole batches where the model runs keeps the data loader trivial (an index lookup)
and the GPU fed; file-backed datasets arrive already transformed and pass through unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in torch's default dtype (float32 unless a test asks for float64)."""
    if x.dtype != torch.uint8:
        return x
    x = x.to(torch.get_default_dtype()).div_(255)
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def random_translate(
    x: torch.Tensor, pad: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Reflect-pad by ``pad`` and crop back at a random offset per sample (RandomCrop(pad=pad))."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b, 1), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1), device=x.device, generator=generator)
    rows = (dy + torch.arange(h, device=x.device)).view(b, h, 1)
    cols = (dx + torch.arange(w, device=x.device)).view(b, 1, w)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def augment(
    x: torch.Tensor, crop_pad: int, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draws from ``generator`` (the global RNG if None). Both engines pass a generator per model
    seeded from (seed, epoch), so they draw the same and a resumed run draws what it would have."""
    if crop_pad:
        x = random_translate(x, crop_pad, generator)
    if flip:
        x = random_flip(x, generator)
    return x
