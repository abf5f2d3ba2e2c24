"""The papers' published numbers (with source and exactness) for the cells we reproduce."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PAPER_CSV = Path(__file__).resolve().parent.parent / "reference" / "paper_numbers.csv"


@dataclass(frozen=True)
class PaperNumber:
    paper: str
    value: float
    source: str
    exactness: str

    @property
    def exact(self) -> bool:
        return self.exactness in ("exact", "quoted")


@cache
def paper_numbers() -> dict[tuple[str, str, float], list[PaperNumber]]:
    out: dict[tuple[str, str, float], list[PaperNumber]] = {}
    with open(PAPER_CSV, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                value = float(row["test_accuracy"])
            except ValueError:  # a claim without a number ("lossless")
                continue
            key = (row["dataset"], row["method"], round(float(row["prune_rate"]), 4))
            out.setdefault(key, []).append(
                PaperNumber(row["paper"], value, row["source"], row["exactness"])
            )
    return out


def base_method(method: str) -> str:
    """'elfs[simclr]' -> 'elfs': variants of a method share the paper's number."""
    return method.split("[", 1)[0]


def lookup(dataset: str, method: str, rate: float, paper: str | None = None) -> list[PaperNumber]:
    found = paper_numbers().get((dataset, base_method(method), round(rate, 4)), [])
    return [p for p in found if paper is None or p.paper == paper]
