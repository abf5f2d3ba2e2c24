"""Method x prune-rate tables: final test accuracy, mean ± std over seeds."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass

import numpy as np


@dataclass
class Cell:
    accuracies: list[float]
    sample_epochs: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else 0.0

    def text(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f} ({len(self.accuracies)})"


def cells(rows: list[dict]) -> dict[tuple[str, str, float], Cell]:
    """(dataset, method, prune_rate) -> Cell. The `full` reference counts at prune rate 0."""
    out: dict[tuple[str, str, float], Cell] = defaultdict(lambda: Cell([], []))
    for r in rows:
        cell = out[(r["dataset"], r["method"], round(float(r["prune_rate"]), 4))]
        cell.accuracies.append(float(r["test_accuracy"]))
        cell.sample_epochs.append(float(r.get("cost", {}).get("sample_epochs", 0.0)))
    return dict(out)


def _axes(table: dict, dataset: str) -> tuple[list[str], list[float]]:
    keys = [k for k in table if k[0] == dataset]
    methods = sorted({k[1] for k in keys}, key=lambda m: (m != "full", m != "random", m))
    rates = sorted({k[2] for k in keys if k[1] != "full"})
    return methods, rates


def markdown(rows: list[dict]) -> str:
    table = cells(rows)
    parts = []
    for dataset in sorted({k[0] for k in table}):
        methods, rates = _axes(table, dataset)
        head = ["method"] + [f"p={r:g}" for r in rates] + ["scoring cost (sample-epochs)"]
        lines = [
            f"### {dataset}: final test accuracy (%), mean ± std (seeds)",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for m in methods:
            if m == "full":
                c = table.get((dataset, "full", 0.0))
                vals = [c.text() if c else "missing"] + [""] * (len(rates) - 1)
                cost = c
            else:
                found = [table.get((dataset, m, r)) for r in rates]
                vals = [c.text() if c else "missing" for c in found]
                cost = next((c for c in found if c), None)
            cost_text = f"{np.mean(cost.sample_epochs):g}" if cost else ""
            lines.append("| " + " | ".join([m, *vals, cost_text]) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


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
            "sample_epochs",
        ]
    )
    for (dataset, method, rate), c in sorted(cells(rows).items()):
        w.writerow(
            [
                dataset,
                method,
                rate,
                f"{c.mean:.4f}",
                f"{c.std:.4f}",
                len(c.accuracies),
                f"{np.mean(c.sample_epochs):g}",
            ]
        )
    return buf.getvalue()
