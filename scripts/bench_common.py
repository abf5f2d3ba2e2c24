"""What every benchmark prints besides its numbers: hardware, versions, and FLOP accounting."""

from __future__ import annotations

import os
import platform

import torch

# Dense bf16 tensor-core peaks (FLOP/s, no sparsity) from the vendors' data sheets.
_BF16_PEAK = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM
    "A100": 312e12,
    "L40S": 362e12,
    "A10": 125e12,
}


def describe_hardware() -> str:
    import pytorch_lightning as pl

    if torch.cuda.is_available():
        device = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    else:
        cpu = platform.processor() or platform.machine()
        device = f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    return (
        f"hardware : {device}\n"
        f"versions : python {platform.python_version()}, torch {torch.__version__}, "
        f"lightning {pl.__version__}"
    )


def peak_bf16_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, peak in _BF16_PEAK.items():
        if key in name:
            return peak
    return None


def flops_per_image(model: torch.nn.Module, data, device) -> float:
    """Forward + backward FLOPs of one training image (counted on a batch of 8)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.to(device).train()
    x = torch.randn(8, data.in_channels, data.image_size, data.image_size, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).sum().backward()
    return counter.get_total_flops() / 8
