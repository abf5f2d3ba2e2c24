"""Method x prune-rate tables: final test accuracy, mean ± std over seeds, beside the papers'.

A row is one computation swept over prune rates: runs are grouped by label (`method`) and
`cell_id` (coreset_lab/run/identity.py), never by label alone. When one label covers several
computations on a dataset (el2n with two `scorer.epochs`, elfs with and without β search), each
gets its own row, named after the config keys that differ (`el2n {scorer.epochs=5}`), and
markdown() says so in a note and a logged warning rather than refusing: the runs are valid, only
the label is ambiguous, and the note tells which option to look at. Results written before
identities existed have no `cell_id` and form a row of their own.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from coreset_lab.report.paper import ROW_SUFFIX, label_of, lookup
from coreset_lab.run.identity import differing_keys, flatten, row_of

log = logging.getLogger(__name__)
MAX_SUFFIX_KEYS = 3  # more differing keys than this: the row is named by its cell_id as well


@dataclass
class Cell:
    accuracies: list[float] = field(default_factory=list)
    sample_epochs: list[float] = field(default_factory=list)
    failed: int = 0
    cell_id: str | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else 0.0

    def text(self) -> str:
        if not self.accuracies:
            return f"failed ({self.failed})"
        s = f"{100 * self.mean:.2f} ± {100 * self.std:.2f} ({len(self.accuracies)})"
        return s + (f" +{self.failed} failed" if self.failed else "")


def rate_of(row: dict) -> float:
    return 0.0 if label_of(row["method"]) == "full" else round(float(row["prune_rate"]), 4)


# --- rows: one per (label, computation) -------------------------------------------------------


def _value_text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _row_identity(row: dict) -> dict:
    """What the row's computation reads, without the prune rate (the table's other axis)."""
    return flatten(row_of(row.get("identity") or {}))


def _suffixes(groups: dict[str | None, dict], keys: list[str]) -> dict[str | None, str]:
    """' {k=v, ...}' per cell_id: the values of the differing keys; the cell_id is added when
    that is not enough to tell the rows apart. Old results (cell_id None) are ' {no identity}'."""
    out: dict[str | None, str] = {}
    for cell_id, ident in groups.items():
        if cell_id is None:
            out[cell_id] = " {no identity}"
            continue
        parts = [f"{k}={_value_text(ident.get(k, '(absent)'))}" for k in keys[:MAX_SUFFIX_KEYS]]
        if len(keys) > MAX_SUFFIX_KEYS or not parts:
            parts.append(f"#{cell_id[:6]}")
        out[cell_id] = ROW_SUFFIX + ", ".join(parts) + "}"
    if len(set(out.values())) < len(out):  # equal texts: let the ids tell them apart
        out = {c: s if c is None else f"{s[:-1]}, #{c[:6]}}}" for c, s in out.items()}
    return out


def assign_rows(rows: list[dict]) -> tuple[dict[int, str], list[str]]:
    """(row name of every result, by id(); notes on labels split into several rows)."""
    by_label: dict[tuple[str, str], dict[str | None, dict]] = defaultdict(dict)
    for r in rows:
        by_label[(r["dataset"], r["method"])].setdefault(r.get("cell_id"), _row_identity(r))
    names: dict[tuple[str, str, str | None], str] = {}
    notes = []
    for (dataset, label), groups in sorted(by_label.items()):
        if len(groups) == 1:
            names.update({(dataset, label, c): label for c in groups})
            continue
        keys = differing_keys([g for c, g in groups.items() if c is not None])
        suffix = _suffixes(groups, keys)
        names.update({(dataset, label, c): label + suffix[c] for c in groups})
        note = (
            f"`{label}` on {dataset} covers {len(groups)} different computations, shown as "
            f"separate rows; they differ in {', '.join(keys) or 'identity (old results)'}"
        )
        notes.append(note)
    return {id(r): names[(r["dataset"], r["method"], r.get("cell_id"))] for r in rows}, notes


def cells(rows: list[dict]) -> dict[tuple[str, str, float], Cell]:
    """(dataset, row name, prune_rate) -> Cell. The `full` reference counts at prune rate 0."""
    return _cells(rows)[0]


def _cells(rows: list[dict]) -> tuple[dict[tuple[str, str, float], Cell], list[str]]:
    names, notes = assign_rows(rows)
    out: dict[tuple[str, str, float], Cell] = {}
    for r in rows:
        key = (r["dataset"], names[id(r)], rate_of(r))
        cell = out.setdefault(key, Cell(cell_id=r.get("cell_id")))
        if r.get("status", "ok") != "ok":
            cell.failed += 1
            continue
        cell.accuracies.append(float(r["test_accuracy"]))
        cell.sample_epochs.append(float(r.get("cost", {}).get("sample_epochs", 0.0)))
    return out, notes


# --- markdown and CSV -------------------------------------------------------------------------


def is_full(row_name: str) -> bool:
    return label_of(row_name) == "full"


def _axes(table: dict, dataset: str) -> tuple[list[str], list[float]]:
    keys = [k for k in table if k[0] == dataset]
    order = {"full": 0, "random": 1}
    methods = sorted({k[1] for k in keys}, key=lambda m: (order.get(label_of(m), 2), m))
    rates = sorted({k[2] for k in keys if not is_full(k[1])})
    return methods, rates


def _paper_text(dataset: str, method: str, rate: float, paper: str | None) -> str:
    found = lookup(dataset, method, rate, paper)
    return " / ".join(f"{p.value:g}{'' if p.exact else '~'} [{p.paper}]" for p in found)


def _cell_text(table, dataset, method, rate, paper) -> str:
    c = table.get((dataset, method, rate))
    text = c.text() if c else "missing"
    published = _paper_text(dataset, method, rate, paper)
    return f"{text}<br>paper {published}" if published else text


def _dataset_lines(table: dict, dataset: str, paper: str | None) -> list[str]:
    methods, rates = _axes(table, dataset)
    head = ["method", *(f"p={r:g}" for r in rates), "scoring cost (sample-epochs)"]
    lines = [
        f"### {dataset}: final test accuracy (%), mean ± std (number of seeds)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for m in methods:
        row_rates = [0.0] if is_full(m) else rates
        vals = [_cell_text(table, dataset, m, r, paper) for r in row_rates]
        vals += [""] * (len(rates) - len(vals))
        found = [table[(dataset, m, r)] for r in row_rates if (dataset, m, r) in table]
        costs = [c for cell in found for c in cell.sample_epochs]
        vals.append(f"{np.mean(costs):g}" if costs else "")
        lines.append("| " + " | ".join([m, *vals]) + " |")
    return lines


def markdown(rows: list[dict]) -> str:
    table, notes = _cells(rows)
    papers = {r.get("paper") for r in rows} - {None}
    paper = papers.pop() if len(papers) == 1 else None
    parts = ["\n".join(_dataset_lines(table, d, paper)) for d in sorted({k[0] for k in table})]
    note = (
        "\n\nPaper numbers: `~` = read off a figure (about ±0.3 points), otherwise from the text. "
        "Sources: coreset_lab/reference/paper_numbers.csv.\n"
    )
    for n in notes:
        log.warning("%s", n)
    if notes:
        note += "\nRows split because one label covers several computations:\n\n"
        note += "".join(f"- {n}\n" for n in notes)
    return "\n\n".join(parts) + note


CSV_HEAD = [
    "dataset",
    "method",
    "prune_rate",
    "mean_accuracy",
    "std_accuracy",
    "seeds",
    "failed",
    "sample_epochs",
    "paper_accuracy",
    "paper_source",
    "cell_id",
]


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_HEAD)
    for (dataset, method, rate), c in sorted(cells(rows).items()):
        found = lookup(dataset, method, rate)
        w.writerow(
            [
                dataset,
                method,
                rate,
                f"{c.mean:.4f}" if c.accuracies else "",
                f"{c.std:.4f}" if c.accuracies else "",
                len(c.accuracies),
                c.failed,
                f"{np.mean(c.sample_epochs):g}" if c.sample_epochs else "",
                ";".join(f"{p.value / 100:.4f}" for p in found),
                ";".join(f"{p.paper}: {p.source} ({p.exactness})" for p in found),
                c.cell_id or "",
            ]
        )
    return buf.getvalue()
