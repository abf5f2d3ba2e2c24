"""Images held in numpy arrays: a `.npy` file of images, or a `.npz` with named arrays.

`.npz` keys: `images` (or `x`), optional `labels` (or `y`), optional `test_images` and
`test_labels`. A separate `labels` file (`.npy`) may give the train labels of a `.npy` of images.
Images are uint8 (0-255) or floats in [0, 1], shaped [N, H, W] (grey), [N, H, W, C] or
[N, C, H, W] with C = 1 or 3 (a last axis of 1 or 3 is read as channels), and square.

Without labels the set is an unlabelled pool (label-free methods only, selection only); with
train labels but no test arrays, any method selects but nothing is evaluated; with both it is a
dataset like any other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from coreset_lab.data.base import Augment, DataBundle, TensorImageSet, channel_stats, resolve_root
from coreset_lab.errors import UserError
from coreset_lab.registry import register

IMAGE_KEYS = ("images", "x")
LABEL_KEYS = ("labels", "y")
UNLABELLED = -1


def _pick(arrays, keys: tuple[str, ...]):
    return next((arrays[k] for k in keys if k in arrays), None)


def read_arrays(path: Path, labels_path: Path | None) -> dict[str, np.ndarray | None]:
    """images, labels, test_images, test_labels (None where absent) of the files given."""
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read dataset.path={path} as numpy arrays ({err})") from None
    if isinstance(loaded, np.ndarray):
        out = {"images": loaded, "labels": None, "test_images": None, "test_labels": None}
    else:
        with loaded:
            try:  # an array of Python objects needs unpickling, which is refused
                files = {k: np.asarray(loaded[k]) for k in loaded.files}
            except ValueError as err:
                raise UserError(
                    f"cannot read the arrays of dataset.path={path} ({err}); save images as "
                    f"uint8 or floats and labels as integers"
                ) from None
        out = {
            "images": _pick(files, IMAGE_KEYS),
            "labels": _pick(files, LABEL_KEYS),
            "test_images": files.get("test_images"),
            "test_labels": files.get("test_labels"),
        }
        if out["images"] is None:
            raise UserError(
                f"{path} has no 'images' (or 'x') array; it holds {', '.join(files) or 'nothing'}"
            )
    if labels_path is not None:
        try:
            out["labels"] = np.load(labels_path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise UserError(
                f"cannot read dataset.labels={labels_path} as a numpy array ({err})"
            ) from None
    return out


def to_nchw_uint8(images: np.ndarray, what: str) -> torch.Tensor:
    """uint8 [N, C, H, W] from any of the accepted layouts and value ranges."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    if a.ndim != 4 or a.shape[1] not in (1, 3) or a.shape[0] == 0:
        raise UserError(
            f"{what} must be [N, H, W], [N, H, W, C] or [N, C, H, W] with C = 1 or 3, "
            f"got shape {tuple(np.shape(images))}"
        )
    if a.shape[2] != a.shape[3]:
        raise UserError(f"{what} must be square images, got {a.shape[2]}x{a.shape[3]}")
    if np.issubdtype(a.dtype, np.floating):
        if not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1):
            raise UserError(f"{what}: float images must lie in [0, 1]")
        a = np.round(a * 255.0)
    elif a.dtype != np.uint8:
        raise UserError(f"{what} must be uint8 (0-255) or floats in [0, 1], got {a.dtype}")
    return torch.from_numpy(np.array(a, dtype=np.uint8, order="C"))  # a copy: in memory, writable


def to_labels(labels, n: int, what: str) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (n and y.min() < 0):
        raise UserError(
            f"{what} must be {n} integer class ids >= 0, got {y.dtype} of shape {y.shape}"
        )
    return y.astype(np.int64)


@register("dataset", "arrays")
def build_arrays(
    root: str | None = None,
    download: bool = False,
    path: str | None = None,
    labels: str | None = None,
) -> DataBundle:
    """The arrays in `path` (validate.py has checked that the files exist)."""
    del root, download  # the arrays name themselves
    file = resolve_root(path, ".")
    arrays = read_arrays(file, None if labels is None else resolve_root(labels, "."))
    images = to_nchw_uint8(arrays["images"], f"the images of {file}")
    n = images.shape[0]
    labelled = arrays["labels"] is not None
    y = to_labels(arrays["labels"], n, "the labels") if labelled else np.full(n, UNLABELLED)
    train = TensorImageSet(images, y)
    test, classes = None, int(y.max()) + 1 if labelled else 0
    if arrays["test_images"] is not None:
        if not labelled or arrays["test_labels"] is None:
            raise UserError(
                f"{file}: test_images need test_labels and train labels (a test split is only "
                f"used to evaluate a target model trained on labels)"
            )
        test_x = to_nchw_uint8(arrays["test_images"], f"the test_images of {file}")
        test_y = to_labels(arrays["test_labels"], test_x.shape[0], "test_labels")
        if test_x.shape[1:] != images.shape[1:]:
            raise UserError(
                f"{file}: test images {tuple(test_x.shape[1:])} differ from the train images "
                f"{tuple(images.shape[1:])}"
            )
        test, classes = TensorImageSet(test_x, test_y), max(classes, int(test_y.max()) + 1)
    mean, std = channel_stats(images)
    size = images.shape[2]
    return DataBundle(
        name="arrays",
        train=train,
        train_eval=train,
        test=test,
        num_classes=classes,
        in_channels=images.shape[1],
        image_size=size,
        mean=mean,
        std=std,
        augment=Augment(crop_pad=max(1, size // 8), flip=True),
        labelled=labelled,
    )
