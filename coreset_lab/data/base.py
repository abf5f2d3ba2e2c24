"""Dataset containers shared by every dataset module, plus the stratified subset helper.

Two kinds of split exist. Small datasets live entirely in memory as uint8 tensors
(`TensorImageSet`) and are augmented on the device by the training module, which is far faster
on CPU than per-item PIL transforms. Large ones (ImageNet-style folders) stay on disk
(`FileImageSet`) and use ordinary torchvision transforms in the DataLoader workers.

Every item carries its dataset index so that per-sample training dynamics can be recorded.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from coreset_lab.errors import UserError


@dataclass(frozen=True)
class Augment:
    """On-device augmentation that the training module applies to uint8 tensor batches."""

    crop_pad: int = 0  # random translate by up to crop_pad px (reflect pad + random crop)
    flip: bool = False  # random horizontal flip


class TensorImageSet(Dataset):
    """A whole split in memory as uint8 [N, C, H, W]. Items are (image_uint8[C,H,W], index).

    Indices >= N are accepted and wrap around (image i % N) while the raw index is returned: the
    trainer pads distributed epochs with copies encoded as i + N and must recognise them.
    """

    def __init__(self, images: torch.Tensor, targets: np.ndarray | Sequence[int]):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        targets = np.asarray(targets, dtype=np.int64)
        if targets.shape != (images.shape[0],):
            raise ValueError(f"{images.shape[0]} images but targets of shape {targets.shape}")
        self.images = images.contiguous()
        self.targets = targets

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        i = int(i)
        return self.images[i % len(self)], i

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        # One gather per batch instead of N item calls plus a stack: the DataLoader fetcher calls
        # this when it exists and hands the result to collate_batch unchanged.
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        return self.images[idx % len(self)], idx

    def subset(self, indices: np.ndarray) -> TensorImageSet:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return TensorImageSet(self.images[idx], self.targets[np.asarray(indices, dtype=np.int64)])

    def __repr__(self) -> str:
        return f"TensorImageSet(n={len(self)}, shape={tuple(self.images.shape[1:])})"


def collate_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """DataLoader collate_fn for both set kinds: (images [B, ...], indices int64 [B])."""
    if isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[0], torch.Tensor):
        if batch[0].dim() == 4:  # already batched by TensorImageSet.__getitems__
            return batch
    xs, idx = zip(*batch, strict=True)
    return torch.stack(list(xs)), torch.as_tensor(idx, dtype=torch.int64)


# What PIL raises for a broken file (the first three) or one too large to decode safely.
BROKEN_IMAGE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def read_text(path: str | Path, what: str) -> str:
    """A list file's text, a file that is not UTF-8 refused with the offending byte."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        bad = err.object[err.start : err.start + 1]
        raise UserError(
            f"{what} {path} is not UTF-8 text (byte {bad!r} at offset {err.start}): save it as "
            f"UTF-8"
        ) from None


def walk_files(root: Path, skip_hidden: bool = False) -> list[Path]:
    """Every file below `root`, directory links followed (Path.rglob of Python 3.11 does not
    follow them), unreadable folders refused rather than skipped. A folder reached twice (a link
    loop, or two links to one folder) is refused: its images would be read forever or twice."""
    seen: dict[tuple[int, int], str] = {}
    out: list[Path] = []

    def unreadable(err: OSError) -> None:
        raise UserError(f"cannot list folder {err.filename} ({err.strerror})")

    for folder, dirs, files in os.walk(root, onerror=unreadable, followlinks=True):
        st = os.stat(folder)
        first = seen.setdefault((st.st_dev, st.st_ino), folder)
        if first != folder:
            raise UserError(
                f"{folder} is the folder {first} again (a directory link loops or two links "
                f"lead to one folder), so its images would count twice: remove the link"
            )
        if skip_hidden:  # .ipynb_checkpoints, .DS_Store: not the user's images
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            files = [f for f in files if not f.startswith(".")]
        out += [Path(folder, f) for f in files]
    return out


def load_rgb(path: str) -> Image.Image:
    # Module-level (not a lambda) so that FileImageSet pickles into DataLoader workers.
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except BROKEN_IMAGE as err:
        raise UserError(
            f"cannot read image {path} ({type(err).__name__}: {err}); replace or remove the file"
        ) from None


class FileImageSet(Dataset):
    """Images read from files. Items are (transform(image) float [C,H,W], index).

    Like TensorImageSet, an index i >= N loads sample i % N and returns the raw i.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        transform: Callable | None,
        loader: Callable[[str], Image.Image] = load_rgb,
    ):
        self.samples = [(str(p), int(t)) for p, t in samples]
        self.targets = np.array([t for _, t in self.samples], dtype=np.int64)
        self.transform = transform
        self.loader = loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        i = int(i)
        path, _ = self.samples[i % len(self)]
        image = self.loader(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, i

    def subset(self, indices: np.ndarray) -> FileImageSet:
        return FileImageSet([self.samples[int(i)] for i in indices], self.transform, self.loader)

    def with_transform(self, transform: Callable | None) -> FileImageSet:
        return FileImageSet(self.samples, transform, self.loader)

    def __repr__(self) -> str:
        return f"FileImageSet(n={len(self)}, transform={self.transform!r})"


@dataclass
class DataBundle:
    """A dataset's splits and what is known about them.

    An unlabelled pool (`labelled=False`: a folder or list of images, arrays without labels) has
    `num_classes` 0, no test split, and its targets are placeholders (-1) that `train_targets`
    refuses to hand out: nothing can read a label that does not exist. A labelled set without a
    test split (arrays with train labels only) can be selected from, not evaluated.
    """

    name: str
    train: Dataset  # as used for training (file sets: with train-time augmentation)
    train_eval: Dataset  # the same train split, same order, eval transform (may be `train`)
    test: Dataset | None  # None: no test split (pools, arrays without test arrays)
    num_classes: int  # 0 for an unlabelled pool
    in_channels: int
    image_size: int
    mean: tuple[float, ...]  # per channel, in [0, 1] units
    std: tuple[float, ...]
    augment: Augment  # on-device augmentation for tensor sets; Augment() for file sets
    class_names: list[str] | None = None
    # Positions in the full split that a train_subset/test_subset kept (None: the full split).
    train_source_indices: np.ndarray | None = None
    test_source_indices: np.ndarray | None = None
    train_source_size: int | None = None  # the full train split's size when a subset was kept
    labelled: bool = True  # whether the train split has ground-truth labels
    # The file behind every train sample, in train order (None: not read from files); written
    # beside the coreset so that a person can act on it.
    train_files: list[str] | None = None

    @property
    def evaluable(self) -> bool:
        """A target model can be trained on labels and tested: train labels and a test split."""
        return self.labelled and self.test is not None

    @property
    def train_targets(self) -> np.ndarray:
        if not self.labelled:
            raise UserError(
                f"dataset {self.name} has no labels, and this step needs the ground truth: use "
                f"a label-free method (method=elfs, d2, prototypicality or random)"
            )
        return np.asarray(self.train_eval.targets, dtype=np.int64)

    @property
    def test_targets(self) -> np.ndarray:
        if self.test is None:
            raise UserError(f"dataset {self.name} has no test split to evaluate on")
        return np.asarray(self.test.targets, dtype=np.int64)

    def source_index(self) -> np.ndarray:
        """For every train sample, its index in the dataset as given (before a train_subset)."""
        if self.train_source_indices is not None:
            return np.asarray(self.train_source_indices, dtype=np.int64)
        return np.arange(len(self.train_eval), dtype=np.int64)


def stratified_subset_indices(
    targets: np.ndarray, n: int, seed: int | Sequence[int] = 0
) -> np.ndarray:
    """Sorted indices of a seeded subset of n samples with class proportions kept.

    Quotas follow the largest-remainder rule; ties between equal remainders are broken at random
    (seeded) so that low class ids are not systematically favoured.
    """
    targets = np.asarray(targets, dtype=np.int64)
    if n >= len(targets):
        return np.arange(len(targets))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(targets, return_counts=True)
    exact = counts * (n / len(targets))
    quota = np.floor(exact).astype(np.int64)
    remainder = n - int(quota.sum())
    order = np.lexsort((rng.random(len(classes)), -(exact - quota)))
    quota[order[:remainder]] += 1
    picked = [
        rng.permutation(np.flatnonzero(targets == c))[:q]
        for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(picked))


def _check_subset_size(key: str, n: int | None) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UserError(f"dataset.{key} must be a positive integer or null, got {n!r}")
    return int(n)


def _subset_set(ds: Dataset, indices: np.ndarray) -> Dataset:
    if not hasattr(ds, "subset"):
        raise TypeError(f"{type(ds).__name__} does not support subsets")
    return ds.subset(indices)


def apply_subsets(
    bundle: DataBundle,
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
) -> DataBundle:
    """Keep seeded class-stratified subsets of the splits (`dataset.train_subset=10000`).

    A size at least the split's size keeps the whole split. train and train_eval get the same
    indices so they stay aligned.
    """
    train_subset = _check_subset_size("train_subset", train_subset)
    test_subset = _check_subset_size("test_subset", test_subset)
    changes: dict = {}
    if train_subset is not None and train_subset < len(bundle.train_eval):
        # Without labels every sample is one class: a seeded uniform subset.
        strata = bundle.train_targets if bundle.labelled else np.zeros(len(bundle.train_eval))
        # Separate streams for the two splits: changing one size leaves the other subset alone.
        idx = stratified_subset_indices(strata, train_subset, seed=[subset_seed, 0])
        train = _subset_set(bundle.train, idx)
        same = bundle.train_eval is bundle.train
        files = bundle.train_files
        changes.update(
            train=train,
            train_eval=train if same else _subset_set(bundle.train_eval, idx),
            train_source_indices=idx,
            train_source_size=len(bundle.train_eval),
            train_files=None if files is None else [files[int(i)] for i in idx],
        )
    if test_subset is not None and bundle.test is not None and test_subset < len(bundle.test):
        idx = stratified_subset_indices(bundle.test_targets, test_subset, seed=[subset_seed, 1])
        changes.update(test=_subset_set(bundle.test, idx), test_source_indices=idx)
    return dataclasses.replace(bundle, **changes) if changes else bundle


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 [N, C, H, W] images, in [0, 1] units."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    # Chunks keep the float copy small for splits of hundreds of MB.
    for chunk in torch.split(images, 256):
        v = chunk.to(torch.float64) / 255.0
        total += v.sum(dim=(0, 2, 3))
        total_sq += (v * v).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)


def resolve_root(root: str | os.PathLike | None, default: str) -> Path:
    """Absolute data root; relative paths are taken from where the user launched the run.

    Hydra may change the working directory into the run's output folder, so a relative
    `dataset.root` is resolved against the original directory when Hydra is running.
    """
    path = Path(os.path.expanduser(str(root if root is not None else default)))
    if not path.is_absolute():
        try:
            from hydra.utils import to_absolute_path

            path = Path(to_absolute_path(str(path)))
        except (ImportError, ValueError):
            path = Path.cwd() / path
    return path.absolute()


def nhwc_to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 NHWC numpy array -> contiguous uint8 NCHW tensor."""
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def missing_data_error(what: str, looked_in: Path, expected: str, download: bool) -> UserError:
    """The one message for data that is not where we looked: where, what, and how to fix it."""
    fix = "pass dataset.root=/path/to/data"
    if download:
        fix += " or dataset.download=true to fetch it there"
    return UserError(f"{what} not found: looked in {looked_in} for {expected}; {fix}")
