"""Fashion-MNIST (60k/10k, 1x28x28) from idx files, by default Debian's dataset-fashion-mnist.

The idx format is parsed here with numpy: it is a few lines, reads `.gz` and plain files alike,
and avoids writing decompressed copies anywhere (the default root is read-only /usr/share).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from coreset_lab.data.base import (
    Augment,
    DataBundle,
    TensorImageSet,
    missing_data_error,
    resolve_root,
)
from coreset_lab.errors import UserError
from coreset_lab.registry import register

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
MEAN = (0.2860,)
STD = (0.3530,)
IDX_UBYTE = 0x08  # idx type code for unsigned bytes, the only one Fashion-MNIST uses


def read_idx(path: Path) -> np.ndarray:
    """An idx-format uint8 array (header: 0, 0, type, ndim, then ndim big-endian int32 sizes)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read idx file {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE:
        raise UserError(f"{path} is not an unsigned-byte idx file (bad header)")
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)):
        raise UserError(f"{path} is truncated: header says {shape}, has {len(raw) - offset} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def candidate_dirs(root: Path) -> list[Path]:
    # Flat (Debian, a manual download) or torchvision's FashionMNIST/raw layout under root.
    return [root, root / "FashionMNIST" / "raw"]


def find_idx_file(root: Path, stem: str) -> Path | None:
    for d in candidate_dirs(root):
        for name in (stem, stem + ".gz"):
            if (d / name).is_file():
                return d / name
    return None


def find_all(root: Path) -> dict[str, Path] | None:
    found = {stem: find_idx_file(root, stem) for pair in FILES.values() for stem in pair}
    return None if any(p is None for p in found.values()) else found


def download_fashion_mnist(root: Path) -> None:
    from torchvision.datasets import FashionMNIST

    try:
        for train in (True, False):
            FashionMNIST(str(root), train=train, download=True)
    except Exception as e:  # network, permissions, checksum: all need the user to act
        raise UserError(f"downloading Fashion-MNIST into {root} failed: {e}") from e


def load_split(files: dict[str, Path], split: str) -> TensorImageSet:
    images_stem, labels_stem = FILES[split]
    images = read_idx(files[images_stem])
    labels = read_idx(files[labels_stem])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(
            f"Fashion-MNIST {split} files do not match: images {images.shape} "
            f"({files[images_stem]}), labels {labels.shape} ({files[labels_stem]})"
        )
    tensor = torch.from_numpy(images.copy()).unsqueeze(1)  # copy: frombuffer is read-only
    return TensorImageSet(tensor, labels.astype(np.int64))


@register("dataset", "fashion_mnist")
def build_fashion_mnist(root: str | None = None, download: bool = False) -> DataBundle:
    path = resolve_root(root, DEFAULT_ROOT)
    files = find_all(path)
    if files is None and download:
        download_fashion_mnist(path)
        files = find_all(path)
    if files is None:
        expected = ", ".join(s + "[.gz]" for pair in FILES.values() for s in pair)
        raise missing_data_error(
            "Fashion-MNIST (Debian package dataset-fashion-mnist)",
            path,
            f"{expected} (flat or under FashionMNIST/raw/)",
            download=True,
        )
    train = load_split(files, "train")
    return DataBundle(
        name="fashion_mnist",
        train=train,
        train_eval=train,
        test=load_split(files, "test"),
        num_classes=10,
        in_channels=1,
        image_size=28,
        mean=MEAN,
        std=STD,
        augment=Augment(crop_pad=2, flip=True),
        class_names=list(CLASS_NAMES),
    )
