"""Accuracy vs prune rate, one line per report row (label + computation), one panel per dataset."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from coreset_lab.report.paper import lookup  # noqa: E402
from coreset_lab.report.table import cells, is_full  # noqa: E402


def _plot_method(ax, table, dataset: str, method: str, color: str) -> None:
    """Our mean ± std over seeds as a line; the paper's numbers as crosses of the same colour."""
    pts = sorted((k[2], c) for k, c in table.items() if k[:2] == (dataset, method) and c.accuracies)
    if not pts:
        return
    ax.errorbar(
        [r for r, _ in pts],
        [100 * c.mean for _, c in pts],
        yerr=[100 * c.std for _, c in pts],
        marker="o",
        capsize=3,
        label=method,
        color=color,
    )
    paper = [(r, n.value) for r, _ in pts for n in lookup(dataset, method, r)]
    if paper:
        xs, ys = zip(*paper, strict=True)
        ax.scatter(xs, ys, marker="x", s=45, color=color, label=f"{method} (paper)")


def plot_accuracy(rows: list[dict], path: str | Path) -> Path:
    table = cells(rows)
    datasets = sorted({k[0] for k in table})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=False):
        names = sorted({k[1] for k in table if k[0] == dataset})
        methods = [m for m in names if not is_full(m)]
        for i, m in enumerate(methods):
            _plot_method(ax, table, dataset, m, f"C{i % 10}")
        for j, m in enumerate(n for n in names if is_full(n)):  # one line per full computation
            full = table[(dataset, m, 0.0)]
            if full.accuracies:
                style = ("--", ":", "-.")[j % 3]
                label = "full data" if m == "full" else m
                ax.axhline(100 * full.mean, color="k", ls=style, lw=1, label=label)
        ax.set(title=dataset, xlabel="prune rate", ylabel="final test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
