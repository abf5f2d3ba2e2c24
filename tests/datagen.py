"""Small on-disk datasets in the official formats, for tests that must not need real data.

Every generator is seeded and returns what it wrote, so tests can check pixel-for-pixel that the
loaders read images back in the right order and orientation.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class FakeSplits:
    """What a generator wrote: images uint8 [N, C, H, W] and labels int64 [N] per split."""

    folder: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]


def balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    # Every class appears (when n allows) in a shuffled order, like the real batches.
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def random_images(n: int, channels: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(n, channels, size, size), dtype=np.uint8)


def write_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def cifar_batch(images: np.ndarray, labels: np.ndarray, label_key: bytes) -> dict:
    # The official row layout: channel planes back to back, each row-major (NCHW flattened).
    return {
        b"batch_label": b"generated",
        b"data": images.reshape(len(images), -1),
        label_key: [int(v) for v in labels],
        b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(images))],
    }


def make_cifar10(
    root: str | Path, n_train: int = 50, n_test: int = 20, seed: int = 0
) -> FakeSplits:
    """root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"class{k}" for k in range(10)]
    out = FakeSplits(
        folder,
        random_images(n_train, 3, 32, rng),
        balanced_labels(n_train, 10, rng),
        random_images(n_test, 3, 32, rng),
        balanced_labels(n_test, 10, rng),
        names,
    )
    bounds = np.linspace(0, n_train, 6).astype(int)  # five batches, as the official archive
    for b in range(5):
        sl = slice(bounds[b], bounds[b + 1])
        batch = cifar_batch(out.train_images[sl], out.train_labels[sl], b"labels")
        write_pickle(folder / f"data_batch_{b + 1}", batch)
    write_pickle(folder / "test_batch", cifar_batch(out.test_images, out.test_labels, b"labels"))
    meta = {b"label_names": [n.encode() for n in names], b"num_vis": 3072}
    write_pickle(folder / "batches.meta", meta)
    return out


def make_cifar100(
    root: str | Path, n_train: int = 200, n_test: int = 100, seed: int = 0
) -> FakeSplits:
    """root/cifar-100-python/{train, test, meta} with fine (100) and coarse (20) labels."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"fine{k}" for k in range(100)]
    out = FakeSplits(
        folder,
        random_images(n_train, 3, 32, rng),
        balanced_labels(n_train, 100, rng),
        random_images(n_test, 3, 32, rng),
        balanced_labels(n_test, 100, rng),
        names,
    )
    for split, images, labels in (
        ("train", out.train_images, out.train_labels),
        ("test", out.test_images, out.test_labels),
    ):
        batch = cifar_batch(images, labels, b"fine_labels")
        batch[b"coarse_labels"] = [int(v) // 5 for v in labels]
        write_pickle(folder / split, batch)
    meta = {
        b"fine_label_names": [n.encode() for n in names],
        b"coarse_label_names": [f"coarse{k}".encode() for k in range(20)],
    }
    write_pickle(folder / "meta", meta)
    return out


def make_stl10(root: str | Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> FakeSplits:
    """root/stl10_binary/{train,test}_{X,y}.bin and class_names.txt (labels stored as 1..10)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    out = FakeSplits(
        folder,
        random_images(n_train, 3, 96, rng),
        balanced_labels(n_train, 10, rng),
        random_images(n_test, 3, 96, rng),
        balanced_labels(n_test, 10, rng),
        names,
    )
    for split, images, labels in (
        ("train", out.train_images, out.train_labels),
        ("test", out.test_images, out.test_labels),
    ):
        # Each channel plane is stored column-major: swap H and W before writing.
        images.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")
        (labels + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    return out


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_fashion_mnist(
    root: str | Path,
    n_train: int = 30,
    n_test: int = 10,
    seed: int = 0,
    compress: bool = True,
    torchvision_layout: bool = False,
) -> FakeSplits:
    """The four idx files, flat in root (Debian) or under root/FashionMNIST/raw (torchvision)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "FashionMNIST" / "raw" if torchvision_layout else Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    out = FakeSplits(
        folder,
        random_images(n_train, 1, 28, rng),
        balanced_labels(n_train, 10, rng),
        random_images(n_test, 1, 28, rng),
        balanced_labels(n_test, 10, rng),
        [str(k) for k in range(10)],
    )
    for prefix, images, labels in (
        ("train", out.train_images, out.train_labels),
        ("t10k", out.test_images, out.test_labels),
    ):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images[:, 0], compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8), compress)
    return out


def make_image_folder(
    root: str | Path,
    classes: int = 3,
    per_class: int = 4,
    size: int = 40,
    seed: int = 0,
    splits: tuple[str, ...] = ("train", "val"),
    ext: str = "png",
) -> list[str]:
    """root/<split>/<wnid>/img_<k>.<ext>: per_class images per class and split. Returns wnids.

    Each class has its own base colour so a model could tell them apart; PNG keeps pixels exact.
    """
    rng = np.random.default_rng(seed)
    wnids = [f"n{k:08d}" for k in range(classes)]
    for split in splits:
        for c, wnid in enumerate(wnids):
            d = Path(root) / split / wnid
            d.mkdir(parents=True, exist_ok=True)
            base = np.array([(60 * c) % 256, (120 + 50 * c) % 256, (200 - 40 * c) % 256])
            for k in range(per_class):
                noise = rng.integers(-30, 31, size=(size, size, 3))
                pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(d / f"img_{k}.{ext}")
    return wnids
