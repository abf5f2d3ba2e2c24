"""Datasets as in-memory uint8 tensor sets or file-backed image sets, behind `build_dataset`."""

from coreset_lab.data.base import (
    Augment,
    DataBundle,
    FileImageSet,
    TensorImageSet,
    apply_subsets,
    collate_batch,
    stratified_subset_indices,
)
from coreset_lab.data.registry import build_dataset, dataset_names

__all__ = [
    "Augment",
    "DataBundle",
    "FileImageSet",
    "TensorImageSet",
    "apply_subsets",
    "build_dataset",
    "collate_batch",
    "dataset_names",
    "stratified_subset_indices",
]
