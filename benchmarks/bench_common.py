"""What every benchmark prints besides its numbers: hardware, versions, and FLOP accounting."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

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


def hardware_info() -> dict:
    """describe_hardware() as fields, for a benchmark's --json."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": False}
    if torch.cuda.is_available():
        info.update(cuda=True, device=torch.cuda.get_device_name(), cuda_version=torch.version.cuda)
    else:
        info.update(device=f"CPU {platform.machine()}", cpus=os.cpu_count())
    info["torch_threads"] = torch.get_num_threads()
    info["bf16_peak_flops"] = peak_bf16_flops()
    return info


def make_cifar_sized(root: Path, n_train: int = 50_000, n_test: int = 10_000) -> Path:
    """CIFAR-10-format files of random 32x32x3 images (the size of CIFAR-10, no download)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.datagen import make_cifar10

    make_cifar10(root, n_train=n_train, n_test=n_test)
    return Path(root)


def write_json(path: str | None, obj: dict) -> None:
    """Write a benchmark's results (atomically: a killed run leaves the last whole file)."""
    if not path:
        return
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)
