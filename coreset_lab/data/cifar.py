"""CIFAR-10 and CIFAR-100 (50k/10k, 3x32x32) from the python-pickle batch files.

The batches are unpickled here rather than through torchvision: torchvision insists on the md5
sums of the official files, so regenerated or repacked copies (and the tests' small fakes)
would be refused. torchvision is used only to download.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coreset_lab.data.base import (
    Augment,
    DataBundle,
    TensorImageSet,
    missing_data_error,
    nhwc_to_tensor,
    resolve_root,
)
from coreset_lab.errors import UserError
from coreset_lab.registry import register

DEFAULT_ROOT = "data"


@dataclass(frozen=True)
class CifarSpec:
    name: str
    title: str
    folder: str  # what the official tarball extracts to
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def all_files(self) -> tuple[str, ...]:
        return (*self.train_files, self.test_file, self.meta_file)


CIFAR10 = CifarSpec(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)
CIFAR100 = CifarSpec(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
)


def unpickle(path: Path) -> dict[str, object]:
    """A CIFAR pickle with str keys (the official files are Python 2 pickles with byte keys)."""
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:  # truncated or not a pickle at all
        raise UserError(f"cannot read CIFAR batch file {path}: {e}") from e
    if not isinstance(d, dict):
        raise UserError(f"{path} is not a CIFAR batch file (unpickled a {type(d).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [n, 32, 32, 3] and labels int64 [n] of one batch file."""
    d = unpickle(path)
    if "data" not in d or label_key not in d:
        raise UserError(f"{path} lacks the '{label_key}' or 'data' entry of a CIFAR batch file")
    data = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise UserError(f"{path}: data {data.shape} / labels {labels.shape} are not CIFAR-shaped")
    # Rows are channel-major (1024 red, 1024 green, 1024 blue), each plane row by row.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_split(folder: Path, files: tuple[str, ...], spec: CifarSpec) -> TensorImageSet:
    parts = [read_batch(folder / f, spec.label_key) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.min() < 0 or labels.max() >= spec.num_classes:
        raise UserError(
            f"{spec.title} labels in {folder} fall outside 0..{spec.num_classes - 1}: "
            f"found {labels.min()}..{labels.max()}"
        )
    return TensorImageSet(nhwc_to_tensor(images), labels)


def read_class_names(folder: Path, spec: CifarSpec) -> list[str] | None:
    names = unpickle(folder / spec.meta_file).get(spec.names_key)
    if names is None or len(names) != spec.num_classes:
        return None
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def find_folder(root: Path, spec: CifarSpec) -> Path | None:
    # Accept root=<parent of cifar-10-batches-py> (torchvision's convention) or the folder itself.
    for d in (root / spec.folder, root):
        if all((d / f).is_file() for f in spec.all_files):
            return d
    return None


def download_cifar(root: Path, spec: CifarSpec) -> None:
    from torchvision.datasets import CIFAR10 as TvCifar10
    from torchvision.datasets import CIFAR100 as TvCifar100

    cls = TvCifar10 if spec is CIFAR10 else TvCifar100
    try:
        cls(str(root), train=True, download=True)
    except Exception as e:  # network, disk, checksum: all need the user to act
        raise UserError(f"downloading {spec.title} into {root} failed: {e}") from e


def not_found_error(path: Path, spec: CifarSpec) -> UserError:
    for d in (path / spec.folder, path):
        present = [f for f in spec.all_files if (d / f).is_file()]
        if present:  # a partial copy deserves a precise answer, not "not found"
            missing = [f for f in spec.all_files if f not in present]
            return UserError(
                f"{spec.title} folder {d} is incomplete: missing {', '.join(missing)}; "
                "re-extract the archive there or pass dataset.download=true"
            )
    expected = f"{spec.folder}/ holding {', '.join(spec.all_files)}"
    return missing_data_error(spec.title, path, expected, download=True)


def build_cifar(spec: CifarSpec, root: str | None, download: bool) -> DataBundle:
    path = resolve_root(root, DEFAULT_ROOT)
    folder = find_folder(path, spec)
    if folder is None and download:
        download_cifar(path, spec)
        folder = find_folder(path, spec)
    if folder is None:
        raise not_found_error(path, spec)
    train = read_split(folder, spec.train_files, spec)
    return DataBundle(
        name=spec.name,
        train=train,
        train_eval=train,
        test=read_split(folder, (spec.test_file,), spec),
        num_classes=spec.num_classes,
        in_channels=3,
        image_size=32,
        mean=spec.mean,
        std=spec.std,
        augment=Augment(crop_pad=4, flip=True),
        class_names=read_class_names(folder, spec),
    )


@register("dataset", "cifar10")
def build_cifar10(root: str | None = None, download: bool = False) -> DataBundle:
    return build_cifar(CIFAR10, root, download)


@register("dataset", "cifar100")
def build_cifar100(root: str | None = None, download: bool = False) -> DataBundle:
    return build_cifar(CIFAR100, root, download)
