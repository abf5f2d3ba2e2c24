"""Coreset selectors: scores (higher = harder) + labels -> sorted int64 train indices."""

from __future__ import annotations

from coreset_lab.registry import build, import_all, registered
from coreset_lab.selection.budget import Selector, coreset_size
from coreset_lab.selection.ccs import CCS
from coreset_lab.selection.d2 import D2
from coreset_lab.selection.double_end import DoubleEnd
from coreset_lab.selection.kcenter import KCenterGreedy
from coreset_lab.selection.moderate import Moderate
from coreset_lab.selection.random_select import RandomSelector
from coreset_lab.selection.topk import TopK

# Every selector class registers itself at its definition; import_all finds a new module.
import_all("coreset_lab.selection")
SELECTORS: dict[str, type[Selector]] = registered("selector")


def build_selector(name: str, **kwargs: object) -> Selector:
    return build("selector", name, **kwargs)


__all__ = [
    "CCS",
    "D2",
    "SELECTORS",
    "DoubleEnd",
    "KCenterGreedy",
    "Moderate",
    "RandomSelector",
    "Selector",
    "TopK",
    "build_selector",
    "coreset_size",
]
