"""STL-10 labelled splits (5k train / 8k test, 3x96x96) from the official binary files.

Read directly (not through torchvision, which checks the archive's md5) so that any copy with
the standard `stl10_binary/` layout works; torchvision only downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coreset_lab.data.base import (
    Augment,
    DataBundle,
    TensorImageSet,
    channel_stats,
    missing_data_error,
    nhwc_to_tensor,
    resolve_root,
)
from coreset_lab.errors import UserError
from coreset_lab.registry import register

DEFAULT_ROOT = "data"
FOLDER = "stl10_binary"
SPLITS = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin")}
SIZE = 96
CLASS_NAMES = [
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
]  # fmt: skip


def read_images(path: Path) -> np.ndarray:
    """uint8 [n, 96, 96, 3]. Each image is stored channel-major, and each plane column-major."""
    raw = np.fromfile(path, dtype=np.uint8)
    per_image = 3 * SIZE * SIZE
    if raw.size == 0 or raw.size % per_image:
        raise UserError(f"{path} is not an STL-10 image file ({raw.size} bytes)")
    return raw.reshape(-1, 3, SIZE, SIZE).transpose(0, 3, 2, 1)


def read_labels(path: Path, n: int) -> np.ndarray:
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1  # stored as 1..10
    if len(labels) != n or labels.min() < 0 or labels.max() > 9:
        raise UserError(f"{path} does not hold {n} STL-10 labels in 1..10")
    return labels


def read_split(folder: Path, split: str) -> TensorImageSet:
    x_file, y_file = SPLITS[split]
    images = read_images(folder / x_file)
    return TensorImageSet(nhwc_to_tensor(images), read_labels(folder / y_file, len(images)))


def find_folder(root: Path) -> Path | None:
    needed = [f for pair in SPLITS.values() for f in pair]
    for d in (root / FOLDER, root):
        if all((d / f).is_file() for f in needed):
            return d
    return None


def read_class_names(folder: Path) -> list[str]:
    path = folder / "class_names.txt"
    if path.is_file():
        names = path.read_text().split()
        if len(names) == 10:
            return names
    return list(CLASS_NAMES)


def download_stl10(root: Path) -> None:
    from torchvision.datasets import STL10

    try:
        STL10(str(root), split="train", download=True)
    except Exception as e:  # network, disk, checksum: all need the user to act
        raise UserError(f"downloading STL-10 into {root} failed: {e}") from e


@register("dataset", "stl10")
def build_stl10(root: str | None = None, download: bool = False) -> DataBundle:
    path = resolve_root(root, DEFAULT_ROOT)
    folder = find_folder(path)
    if folder is None and download:
        download_stl10(path)
        folder = find_folder(path)
    if folder is None:
        expected = f"{FOLDER}/ holding train_X.bin, train_y.bin, test_X.bin, test_y.bin"
        raise missing_data_error("STL-10", path, expected, download=True)
    train = read_split(folder, "train")
    # No agreed-upon constants for the labelled split: computed from it (about a second).
    mean, std = channel_stats(train.images)
    return DataBundle(
        name="stl10",
        train=train,
        train_eval=train,
        test=read_split(folder, "test"),
        num_classes=10,
        in_channels=3,
        image_size=SIZE,
        mean=mean,
        std=std,
        augment=Augment(crop_pad=4, flip=True),  # as ELFS trains it
        class_names=read_class_names(folder),
    )
