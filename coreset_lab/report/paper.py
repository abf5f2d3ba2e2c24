"""The papers' published numbers (with source and exactness) for the cells we reproduce."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PAPER_CSV = Path(__file__).resolve().parent.parent / "reference" / "paper_numbers.csv"
# A report row of a label shared by several computations is "<label> {<what differs>}".
ROW_SUFFIX = " {"


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


@cache
def paper_names() -> tuple[str, ...]:
    with open(PAPER_CSV, newline="") as fh:
        return tuple(sorted({row["paper"] for row in csv.DictReader(fh)}))


def check_paper(value: object) -> str | None:
    """The run's `paper`: null (any paper's numbers) or a paper of reference/paper_numbers.csv."""
    from coreset_lab.errors import UserError

    if value is not None and (not isinstance(value, str) or value not in paper_names()):
        raise UserError(
            f"paper must be null (any) or one of {', '.join(paper_names())}, got {value!r}"
        )
    return value


def label_of(row_name: str) -> str:
    """'el2n {scorer.epochs=5}' -> 'el2n': the method label of a report row."""
    return row_name.split(ROW_SUFFIX, 1)[0]


def base_method(method: str) -> str:
    """'elfs[simclr]' -> 'elfs': encoder variants of a method share the paper's number. Labels
    put every other option before the bracket ('elfs(forgetting)[pca]', 'prototypicality-easy
    [pca]'), so a variant that is not the paper's method never matches."""
    return label_of(method).split("[", 1)[0]


def lookup(dataset: str, method: str, rate: float, paper: str | None = None) -> list[PaperNumber]:
    found = paper_numbers().get((dataset, base_method(method), round(rate, 4)), [])
    return [p for p in found if paper is None or p.paper == paper]
