"""The one entry point `build_dataset`: a dataset name to its registered builder."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from coreset_lab.data.base import DataBundle, apply_subsets
from coreset_lab.errors import UserError
from coreset_lab.registry import import_all, lookup, registered

import_all("coreset_lab.data")
# Each builder registers at its definition (import_all runs them all) and takes
# (root, download, **its own options) and returns the full splits. Unlabelled pools and arrays
# (labels optional) are selection without ground truth.
BUILDERS: dict[str, Callable[..., DataBundle]] = registered("dataset")
SUBSET_KEYS = ("train_subset", "test_subset", "subset_seed")


def dataset_names() -> list[str]:
    return sorted(BUILDERS)


def canonical_name(name: str) -> str:
    # "Fashion-MNIST", "CIFAR10" and "cifar-10" all mean what the config file names say.
    key = str(name).strip().lower().replace("-", "_")
    if key not in BUILDERS:
        key = key.replace("_", "")
        key = {k.replace("_", ""): k for k in BUILDERS}.get(key, key)
    lookup("dataset", key, "dataset.name")  # the one error for an unknown name
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
