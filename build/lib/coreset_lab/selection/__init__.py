"""Coreset selectors: scores (higher = harder) + labels -> sorted int64 train indices."""

from __future__ import annotations

from coreset_lab.registry import build_registered
from coreset_lab.selection.budget import Selector, coreset_size
from coreset_lab.selection.ccs import CCS
from coreset_lab.selection.d2 import D2
from coreset_lab.selection.double_end import DoubleEnd
from coreset_lab.selection.random_select import RandomSelector
from coreset_lab.selection.topk import TopK

SELECTORS: dict[str, type[Selector]] = {
    "random": RandomSelector,
    "topk": TopK,
    "ccs": CCS,
    "double_end": DoubleEnd,
    "d2": D2,
}


def build_selector(name: str, **kwargs: object) -> Selector:
    return build_registered("selector", SELECTORS, name, kwargs)


__all__ = [
    "CCS",
    "D2",
    "SELECTORS",
    "DoubleEnd",
    "RandomSelector",
    "Selector",
    "TopK",
    "build_selector",
    "coreset_size",
]
