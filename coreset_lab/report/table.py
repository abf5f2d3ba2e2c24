"""Method x prune-rate tables: final test accuracy, mean ± std over seeds, beside the papers'."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from coreset_lab.report.paper import lookup


@dataclass
class Cell:
    accuracies: list[float] = field(default_factory=list)
    sample_epochs: list[float] = field(default_factory=list)
    failed: int = 0

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
    return 0.0 if row["method"] == "full" else round(float(row["prune_rate"]), 4)


def cells(rows: list[dict]) -> dict[tuple[str, str, float], Cell]:
    """(dataset, method, prune_rate) -> Cell. The `full` reference counts at prune rate 0."""
    out: dict[tuple[str, str, float], Cell] = defaultdict(Cell)
    for r in rows:
        cell = out[(r["dataset"], r["method"], rate_of(r))]
        if r.get("status", "ok") != "ok":
            cell.failed += 1
            continue
        cell.accuracies.append(float(r["test_accuracy"]))
        cell.sample_epochs.append(float(r.get("cost", {}).get("sample_epochs", 0.0)))
    return dict(out)


def _axes(table: dict, dataset: str) -> tuple[list[str], list[float]]:
    keys = [k for k in table if k[0] == dataset]
    methods = sorted({k[1] for k in keys}, key=lambda m: (m != "full", m != "random", m))
    rates = sorted({k[2] for k in keys if k[1] != "full"})
    return methods, rates


def _paper_text(dataset: str, method: str, rate: float, paper: str | None) -> str:
    found = lookup(dataset, method, rate, paper)
    return " / ".join(f"{p.value:g}{'' if p.exact else '~'} [{p.paper}]" for p in found)


def _cell_text(table, dataset, method, rate, paper) -> str:
    c = table.get((dataset, method, rate))
    text = c.text() if c else "missing"
    published = _paper_text(dataset, method, rate, paper)
    return f"{text}<br>paper {published}" if published else text


def markdown(rows: list[dict]) -> str:
    table = cells(rows)
    papers = {r.get("paper") for r in rows} - {None}
    paper = papers.pop() if len(papers) == 1 else None
    parts = []
    for dataset in sorted({k[0] for k in table}):
        methods, rates = _axes(table, dataset)
        head = ["method", *(f"p={r:g}" for r in rates), "scoring cost (sample-epochs)"]
        lines = [
            f"### {dataset}: final test accuracy (%), mean ± std (number of seeds)",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for m in methods:
            row_rates = [0.0] if m == "full" else rates
            vals = [_cell_text(table, dataset, m, r, paper) for r in row_rates]
            vals += [""] * (len(rates) - len(vals))
            found = [table[(dataset, m, r)] for r in row_rates if (dataset, m, r) in table]
            costs = [c for cell in found for c in cell.sample_epochs]
            vals.append(f"{np.mean(costs):g}" if costs else "")
            lines.append("| " + " | ".join([m, *vals]) + " |")
        parts.append("\n".join(lines))
    note = (
        "\n\nPaper numbers: `~` = read off a figure (about ±0.3 points), otherwise from the text. "
        "Sources: coreset_lab/reference/paper_numbers.csv.\n"
    )
    return "\n\n".join(parts) + note


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
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
        ]
    )
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
            ]
        )
    return buf.getvalue()
