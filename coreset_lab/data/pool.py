"""Unlabelled pools of image files: a folder tree (any layout) or a text/CSV list of paths.

A pool has no labels and no test split: it is what ELFS is for (which of these images should the
annotators label?). Its samples are the image files in a fixed order (sorted paths for a folder,
the list's order for a list), and the bundle keeps every file's path so that the coreset can name
its files.

Images are brought to `image_size` x `image_size` (short side resized, centre crop) with
`channels` 1 (grey) or 3 (RGB); `auto` takes the most common of the pool's images (a mixed pool
is reported). A pool that fits in memory (`in_memory`, auto: up to IN_MEMORY_LIMIT bytes as
uint8) is decoded once into a tensor set (fast engine, on-device augmentation, exact content hash
in artifact keys); a larger one is read from the files by DataLoader workers with the
ImageNet-style transforms of image_folder.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from coreset_lab.data.base import (
    BROKEN_IMAGE,
    Augment,
    DataBundle,
    FileImageSet,
    TensorImageSet,
    channel_stats,
    collate_batch,
    load_rgb,
    read_text,
    resolve_root,
    walk_files,
)
from coreset_lab.data.imagenet import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform
from coreset_lab.errors import UserError
from coreset_lab.registry import register

log = logging.getLogger(__name__)
IN_MEMORY_LIMIT = 4 << 30  # bytes of uint8 pixels: above this, `in_memory: auto` reads files
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
# ImageNet's statistics averaged over the channels, for grey images read from files.
GREY_MEAN, GREY_STD = (0.449,), (0.226,)
PATH_COLUMNS = ("path", "file", "filename", "image")
UNLABELLED = -1  # the placeholder target of every pool sample (DataBundle.train_targets refuses)


def load_grey(path: str) -> Image.Image:
    # Module-level (not a lambda) so that FileImageSet pickles into DataLoader workers.
    return load_rgb(path).convert("L")


def list_pool_images(root: Path) -> list[str]:
    """Every image file below `root` (any depth, directory links followed), sorted; hidden
    folders and files (.ipynb_checkpoints, .DS_Store) are skipped."""
    return sorted(
        str(p)
        for p in walk_files(root, skip_hidden=True)
        if p.is_file() and has_file_allowed_extension(p.name, IMG_EXTENSIONS)
    )


def read_path_list(path: Path, root: Path | None) -> list[str]:
    """The image paths of a list file: one per line (.txt, blank and # lines skipped), or the
    `path` (file, filename, image) column of a .csv. Relative paths are taken from `root` when
    given, else from the list file's folder. Missing and repeated files are refused."""
    base = root if root is not None else path.parent
    text = read_text(path, "path list")
    if path.suffix.lower() == ".csv":
        entries = csv_column(path, list(csv.reader(io.StringIO(text))))
    else:
        lines = (line.strip() for line in text.splitlines())
        entries = [line for line in lines if line and not line.startswith("#")]
    files = [str(p if p.is_absolute() else base / p) for p in map(Path, entries)]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} of the {len(files)} images listed in {path} do not exist (first: "
            f"{missing[0]}); relative paths are taken from "
            f"{'dataset.root' if root is not None else 'the list file folder'} {base}"
        )
    check_unique(files, path)
    return files


def csv_column(path: Path, rows: list[list[str]]) -> list[str]:
    """The non-empty cells of the path column named by the header (never the header itself)."""
    header = [h.strip().lower() for h in rows[0]] if rows else []
    column = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
    if column is None:
        raise UserError(
            f"path list {path} has no path column: its header {rows[0] if rows else []} names "
            f"none of {', '.join(PATH_COLUMNS)} (a list without a header is a .txt, one path a "
            f"line)"
        )
    cells = {
        line: r[column].strip() if len(r) > column else ""
        for line, r in enumerate(rows[1:], 2)
        if any(c.strip() for c in r)  # a blank row names nothing
    }
    blank = [line for line, cell in cells.items() if not cell]
    if blank:
        raise UserError(
            f"path list {path}: {len(blank)} row(s) have no {header[column]} (first: row "
            f"{blank[0]})"
        )
    return list(cells.values())


def check_unique(files: list[str], path: Path) -> None:
    """A file listed twice would be a sample twice (selected, labelled and paid for twice)."""
    seen: set[Path] = set()
    repeats = []
    for f in files:
        real = Path(f).resolve()  # ./a.png, a.png and a link to it are one file
        if real in seen:
            repeats.append(f)
        seen.add(real)
    if repeats:
        raise UserError(
            f"path list {path} names {len(repeats)} duplicate file(s) (first: {repeats[0]}): "
            f"list every image once"
        )


def image_shape(path: str) -> tuple[int, int]:
    """(short side, channels) of the image at `path`, from its header."""
    try:
        with Image.open(path) as im:
            return min(im.size), 1 if im.mode in GREY_MODES else 3
    except (*BROKEN_IMAGE, Image.DecompressionBombWarning) as err:
        raise UserError(
            f"cannot read image {path} ({type(err).__name__}: {err}); replace or remove the file"
        ) from None


def pool_shape(files: list[str]) -> tuple[int, int]:
    """(short side, channels) that `auto` means: the most common of the whole pool (one odd file
    never sets it; a mixed pool is reported). Every header is read, so a broken file or a
    decompression bomb (PIL's warning too) is refused here, by name, before any decoding."""
    with warnings.catch_warnings():  # set once for the threads below: not thread-safe per file
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # headers: I/O bound
            shapes = list(pool.map(image_shape, files))
    out = []
    for what, counts in (("short sides", Counter(s for s, _ in shapes)),
                         ("channel counts", Counter(c for _, c in shapes))):  # fmt: skip
        out.append(counts.most_common(1)[0][0])
        if len(counts) > 1:
            log.warning("the %d pool images have mixed %s (%s): auto takes the most common, %d",
                        len(files), what, _counts(counts), out[-1])  # fmt: skip
    return out[0], out[1]


def _counts(counts: Counter) -> str:
    shown = ", ".join(f"{n} of {v}" for v, n in counts.most_common(5))
    return shown + (f" and {len(counts) - 5} more" if len(counts) > 5 else "")


def decode_all(files: list[str], size: int, channels: int) -> torch.Tensor:
    """Every image as uint8 [N, channels, size, size], decoded by DataLoader workers."""
    from coreset_lab.embedding.extract import loader_workers
    from coreset_lab.progress import Progress

    to_uint8 = T.Compose([T.Resize(size), T.CenterCrop(size), T.PILToTensor()])
    samples = [(f, UNLABELLED) for f in files]
    dataset = FileImageSet(samples, to_uint8, load_grey if channels == 1 else load_rgb)
    workers = loader_workers("auto", dataset)
    loader = DataLoader(dataset, batch_size=256, num_workers=workers, collate_fn=collate_batch)
    out = torch.empty((len(files), channels, size, size), dtype=torch.uint8)
    with Progress(f"decoding {len(files)} images", len(files), unit="img") as progress:
        for x, idx in loader:
            out[idx] = x
            progress.update(len(idx))
    return out


def _pool_bundle(name: str, files: list[str], image_size, channels, in_memory) -> DataBundle:
    auto = image_size == "auto" or channels == "auto"
    auto_size, auto_channels = pool_shape(files) if auto else (None, None)
    size = auto_size if image_size == "auto" else int(image_size)
    channels = auto_channels if channels == "auto" else int(channels)
    fits = len(files) * channels * size * size <= IN_MEMORY_LIMIT
    common = dict(
        name=name,
        num_classes=0,
        in_channels=channels,
        image_size=size,
        labelled=False,
        test=None,
        train_files=files,
    )
    if in_memory is True or (in_memory == "auto" and fits):
        train = TensorImageSet(decode_all(files, size, channels), np.full(len(files), UNLABELLED))
        mean, std = channel_stats(train.images)
        # Translate by an eighth of the side, flip: the usual augmentation of natural images.
        augment = Augment(crop_pad=max(1, size // 8), flip=True)
        return DataBundle(train=train, train_eval=train, mean=mean, std=std, augment=augment,
                          **common)  # fmt: skip
    mean, std = (GREY_MEAN, GREY_STD) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)
    samples = [(f, UNLABELLED) for f in files]
    loader = load_grey if channels == 1 else load_rgb
    train = FileImageSet(samples, train_transform(size, mean, std), loader)
    train_eval = FileImageSet(samples, eval_transform(size, mean, std), loader)
    return DataBundle(train=train, train_eval=train_eval, mean=mean, std=std, augment=Augment(),
                      **common)  # fmt: skip


@register("dataset", "unlabelled_folder")
def build_unlabelled_folder(
    root: str | None = None,
    download: bool = False,
    image_size: int | str = "auto",
    channels: int | str = "auto",
    in_memory: bool | str = "auto",
) -> DataBundle:
    """Every image file below `root`, in any layout (validate.py has checked that it exists)."""
    del download  # the folder is the user's own
    path = resolve_root(root, ".")
    files = list_pool_images(path)
    if not files:
        raise UserError(
            f"unlabelled folder: no images ({', '.join(IMG_EXTENSIONS)}) anywhere below {path}"
        )
    return _pool_bundle("unlabelled_folder", files, image_size, channels, in_memory)


@register("dataset", "path_list")
def build_path_list(
    root: str | None = None,
    download: bool = False,
    path: str | None = None,
    image_size: int | str = "auto",
    channels: int | str = "auto",
    in_memory: bool | str = "auto",
) -> DataBundle:
    """The images named by the list file `path`, in its order; relative names from `root`."""
    del download
    list_file = resolve_root(path, ".")
    files = read_path_list(list_file, None if root is None else resolve_root(root, "."))
    if not files:
        raise UserError(f"path list {list_file} names no image")
    return _pool_bundle("path_list", files, image_size, channels, in_memory)
