"""ImageNet and any other class-per-folder image set, read from files (`FileImageSet`).

Layout: `<root>/train/<class>/*.JPEG` and `<root>/val/<class>/*.JPEG` (the standard one; the raw
ILSVRC val folder is flat and must first be sorted into class folders, e.g. with valprep.sh).
Class ids are the sorted train folder names, and val uses the same mapping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torchvision import transforms as T
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from coreset_lab.data.base import (
    Augment,
    DataBundle,
    FileImageSet,
    missing_data_error,
    resolve_root,
    walk_files,
)
from coreset_lab.errors import UserError
from coreset_lab.registry import register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_RATIO = 256 / 224  # eval resizes the short side by this much more than the crop


def list_classes(split_dir: Path) -> list[str]:
    return sorted(e.name for e in split_dir.iterdir() if e.is_dir() and not e.name.startswith("."))


def list_images(class_dir: Path) -> list[Path]:
    # Walks subfolders too and follows directory links, as torchvision's ImageFolder does.
    return sorted(
        p
        for p in walk_files(class_dir)
        if p.is_file() and has_file_allowed_extension(p.name, IMG_EXTENSIONS)
    )


def scan_split(split_dir: Path, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    """(path, class id) for every image, class by class in id order, files sorted."""
    samples: list[tuple[str, int]] = []
    for name, target in sorted(class_to_idx.items(), key=lambda kv: kv[1]):
        class_dir = split_dir / name
        if class_dir.is_dir():
            samples.extend((str(p), target) for p in list_images(class_dir))
    return samples


def check_split_dir(root: Path, split: str, title: str) -> Path:
    split_dir = root / split
    if not root.is_dir():
        raise missing_data_error(
            title, root, f"{split}/<class>/<image> (it cannot be downloaded)", download=False
        )
    if not split_dir.is_dir():
        raise UserError(
            f"{title}: no '{split}' folder in {root}; expected {root}/{split}/<class>/<image> "
            "(pass dataset.root=/path/to/folder holding train/ and val/)"
        )
    return split_dir


def read_splits(
    root: Path, train_dir: str, test_dir: str, title: str
) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    train_path = check_split_dir(root, train_dir, title)
    test_path = check_split_dir(root, test_dir, title)
    classes = list_classes(train_path)
    if len(classes) < 2:
        raise UserError(
            f"{title}: {train_path} holds {len(classes)} class folder(s), need at least 2; "
            f"expected {train_path}/<class>/<image>"
        )
    class_to_idx = {c: i for i, c in enumerate(classes)}
    train = scan_split(train_path, class_to_idx)
    counts = np.bincount([t for _, t in train], minlength=len(classes))
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        raise UserError(
            f"{title}: no images ({', '.join(IMG_EXTENSIONS)}) in {len(empty)} train class "
            f"folder(s) under {train_path}: {', '.join(empty[:5])}"
        )
    unknown = sorted(set(list_classes(test_path)) - set(classes))
    if unknown:
        raise UserError(
            f"{title}: {test_path} has class folders missing from {train_path}: "
            f"{', '.join(unknown[:5])}"
        )
    test = scan_split(test_path, class_to_idx)
    if not test:
        raise UserError(
            f"{title}: no images in {test_path}; expected {test_path}/<class>/<image> "
            "(a flat ImageNet val folder must first be sorted into class folders)"
        )
    return classes, train, test


def train_transform(image_size: int, mean, std) -> T.Compose:
    return T.Compose(
        [
            T.RandomResizedCrop(image_size),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def eval_transform(image_size: int, mean, std) -> T.Compose:
    return T.Compose(
        [
            T.Resize(round(image_size * RESIZE_RATIO)),
            T.CenterCrop(image_size),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def build_folder_set(
    root: str | None,
    image_size: int,
    train_dir: str,
    test_dir: str,
    name: str,
    title: str,
) -> DataBundle:
    if root is None:
        raise UserError(
            f"{title}: no data root given; pass dataset.root=/path/to/folder holding "
            f"{train_dir}/<class>/<image> and {test_dir}/<class>/<image>"
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise UserError(f"dataset.image_size must be an integer >= 8, got {image_size!r}")
    path = resolve_root(root, ".")
    classes, train_samples, test_samples = read_splits(path, train_dir, test_dir, title)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    evaluate = eval_transform(image_size, mean, std)
    return DataBundle(
        name=name,
        train=FileImageSet(train_samples, train_transform(image_size, mean, std)),
        train_eval=FileImageSet(train_samples, evaluate),
        test=FileImageSet(test_samples, evaluate),
        num_classes=len(classes),
        in_channels=3,
        image_size=image_size,
        mean=mean,
        std=std,
        augment=Augment(),
        class_names=classes,
        train_files=[p for p, _ in train_samples],
    )


@register("dataset", "imagenet")
def build_imagenet(
    root: str | None = None, download: bool = False, image_size: int = 224
) -> DataBundle:
    """ILSVRC-2012 in the standard train/ + val/ class-folder layout (no download: licensed)."""
    del download
    return build_folder_set(root, image_size, "train", "val", name="imagenet", title="ImageNet")


@register("dataset", "image_folder")
def build_image_folder(
    root: str | None = None,
    download: bool = False,
    image_size: int = 224,
    train_dir: str = "train",
    test_dir: str = "val",
) -> DataBundle:
    """Any `<root>/<train_dir>/<class>/*` + `<root>/<test_dir>/<class>/*` set, ImageNet stats."""
    del download  # nothing to fetch: the folder is the user's own
    return build_folder_set(
        root, image_size, train_dir, test_dir, name="image_folder", title="image folder"
    )
