"""Dataset names -> builders, and the one entry point `build_dataset`."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from coreset_lab.data.arrays import build_arrays
from coreset_lab.data.base import DataBundle, apply_subsets
from coreset_lab.data.cifar import build_cifar10, build_cifar100
from coreset_lab.data.digits import build_digits
from coreset_lab.data.fashion_mnist import build_fashion_mnist
from coreset_lab.data.imagenet import build_image_folder, build_imagenet
from coreset_lab.data.pool import build_path_list, build_unlabelled_folder
from coreset_lab.data.stl10 import build_stl10
from coreset_lab.errors import UserError

# Each builder takes (root, download, **its own options) and returns the full splits.
BUILDERS: dict[str, Callable[..., DataBundle]] = {
    "digits": build_digits,
    "fashion_mnist": build_fashion_mnist,
    "cifar10": build_cifar10,
    "cifar100": build_cifar100,
    "stl10": build_stl10,
    "imagenet": build_imagenet,
    "image_folder": build_image_folder,
    # Unlabelled pools and arrays (labels optional): selection without ground truth.
    "unlabelled_folder": build_unlabelled_folder,
    "path_list": build_path_list,
    "arrays": build_arrays,
}
SUBSET_KEYS = ("train_subset", "test_subset", "subset_seed")


def dataset_names() -> list[str]:
    return sorted(BUILDERS)


def canonical_name(name: str) -> str:
    # "Fashion-MNIST", "CIFAR10" and "cifar-10" all mean what the config file names say.
    key = str(name).strip().lower().replace("-", "_")
    if key not in BUILDERS:
        key = key.replace("_", "")
        key = {k.replace("_", ""): k for k in BUILDERS}.get(key, key)
    if key not in BUILDERS:
        raise UserError(
            f"unknown dataset {name!r}; choose one of {', '.join(dataset_names())} "
            "(dataset=<name> on the command line)"
        )
    return key


def builder_options(builder: Callable[..., DataBundle]) -> list[str]:
    return [p for p in inspect.signature(builder).parameters if p not in ("root", "download")]


def build_dataset(
    name: str,
    root: str | None = None,
    download: bool = False,
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
    **kwargs,
) -> DataBundle:
    """Load a dataset by name (see `dataset_names()`), optionally keeping stratified subsets.

    `root=None` means the dataset's default location; `kwargs` are dataset-specific options
    (e.g. `image_size` for imagenet). The runner calls `build_dataset(**cfg.dataset)`.
    """
    key = canonical_name(name)
    builder = BUILDERS[key]
    allowed = builder_options(builder)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        accepted = ", ".join(["root", "download", *allowed, *SUBSET_KEYS])
        raise UserError(
            f"dataset {key!r} has no option {', '.join('dataset.' + k for k in unknown)}; "
            f"it accepts: {accepted}"
        )
    bundle = builder(root=None if root is None else str(root), download=bool(download), **kwargs)
    return apply_subsets(bundle, train_subset, test_subset, subset_seed)
