"""Choosing ELFS' hard-end cutoff β without labels.

Split the train set (stratified by pseudo-label) into a pool and a held-out part; for every β of
the grid, select a double-end coreset from the pool with the run's scores, train on it with
pseudo-labels, and measure accuracy against the pseudo-labels of the held-out part. The best β
(the smallest on ties) is used for the real selection. Every trial is an artifact of the store.

`protocol.beta_truth` (a DIAGNOSTIC, off by default) then checks that choice against the truth: for
every β of the grid, the target model is trained on the double-end coreset of the full train set
with ground-truth labels and its final test accuracy is recorded (`beta_truth` in results.json,
the second curve of beta_search.png). Reported only: it runs after β and the coreset were chosen
and changes neither. `beta_at_grid_edge` says whether the chosen β lies at an end of the grid
that could be moved (above 0 at the low end, below the prune rate at the high end).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.selection import DoubleEnd
from coreset_lab.services.context import RunContext


@dataclass
class BetaCurve:
    betas: list[float]
    accuracies: list[float]

    @property
    def best(self) -> float:
        return self.betas[int(np.argmax(self.accuracies))]  # argmax: the first (smallest) on ties


@dataclass
class TruthCurve:
    """Final test accuracy of the target model trained on each β's coreset (ground truth)."""

    betas: list[float]
    test_accuracy: list[float]

    @property
    def best(self) -> float:
        return self.betas[int(np.argmax(self.test_accuracy))]  # the smallest on ties

    def as_result(self) -> dict:
        return {"beta": self.betas, "test_accuracy": self.test_accuracy, "best": self.best}


def at_grid_edge(betas: list[float], chosen: float, prune_rate: float) -> bool:
    """Whether `chosen` is the grid's smallest β while smaller ones exist (> 0), or its largest
    while larger ones are allowed (< prune rate): the grid should then be widened that way."""
    low, high = min(betas), max(betas)
    return (chosen == low and low > 0) or (chosen == high and high < prune_rate)


def holdout_split(pseudo: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool, held): a seeded share `fraction` of every pseudo-class is held out."""
    if not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise UserError(f"protocol.holdout_fraction must be in (0, 1), got {fraction!r}")
    rng = np.random.default_rng([int(seed), 0xBE7A])
    held = [
        rng.permutation(members)[: round(fraction * members.size)]
        for members in (np.flatnonzero(pseudo == c) for c in np.unique(pseudo))
    ]
    held = np.sort(np.concatenate(held))
    pool = np.setdiff1d(np.arange(pseudo.size), held)
    if not (pool.size and held.size):  # nothing to train the trials on, or to measure them by
        raise UserError(
            f"protocol.holdout_fraction={fraction} holds out {held.size} of the {pseudo.size} "
            f"samples (rounded per pseudo-class), leaving the β-search "
            f"{'pool' if not pool.size else 'held-out part'} empty: choose a fraction nearer 0.1"
        )
    return pool, held


def search_beta(
    ctx: RunContext,
    pseudo: np.ndarray,
    scores: np.ndarray,
    beta_grid: list[float],
    prune_rate: float,
    holdout_fraction: float,
    iterations: int,
) -> BetaCurve:
    """One trial per β ≤ prune rate of the grid: select from the pool, train on the pool's
    pseudo-labels, measure accuracy against the held-out part's pseudo-labels."""
    grid = [float(b) for b in beta_grid if float(b) <= prune_rate]
    if not grid:
        raise UserError(f"protocol.beta_grid has no β ≤ selector.prune_rate={prune_rate}")
    pool, held = holdout_split(pseudo, holdout_fraction, ctx.seed)
    accs = []
    for beta in grid:
        picked = pool[DoubleEnd(prune_rate, beta)(scores[pool], pseudo[pool], None)]
        name = f"β trial {beta:g} (pseudo-labels)"
        accs.append(ctx.models.trial_accuracy(pseudo, picked, held, iterations, name))
    return BetaCurve(grid, accs)


def truth_curve(
    ctx: RunContext,
    scores: np.ndarray,
    pseudo: np.ndarray,
    betas: list[float],
    chosen: float,
    prune_rate: float,
) -> TruthCurve:
    """DIAGNOSTIC (reads test labels): the run's target evaluation of every β's coreset.

    Each coreset is the one the run would select with that β (`DoubleEnd` on the full train set,
    the run's scores and pseudo-labels and seed) and each evaluation is `models.evaluate`, so the
    chosen β's is the very artifact the run's own evaluation then reuses. The chosen β is trained
    first, so the run directory's first `target` log is the run's target model."""
    order = sorted(range(len(betas)), key=lambda i: betas[i] != chosen)  # the chosen one first
    accs: dict[int, float] = {}
    for i in order:
        coreset = DoubleEnd(prune_rate, betas[i])(scores, pseudo, np.random.default_rng(ctx.seed))
        accs[i] = ctx.models.evaluate(coreset).test_accuracy
    return TruthCurve(list(betas), [accs[i] for i in range(len(betas))])


def save_curve(
    curve: BetaCurve, out_dir: Path, prune_rate: float, truth: TruthCurve | None = None
) -> None:
    """beta_search.json / .png; with `truth`, the test-accuracy curve on a second y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"beta": curve.betas, "pseudo_label_accuracy": curve.accuracies, "best": curve.best}
    if truth is not None:
        data["beta_truth"] = truth.as_result()
    (out_dir / "beta_search.json").write_text(json.dumps(data, indent=2))
    fig, ax = plt.subplots(figsize=(5.5 if truth else 5, 3.5))
    lines = ax.plot(
        curve.betas, [100 * a for a in curve.accuracies], marker="o", label="label-free search"
    )
    lines.append(
        ax.axvline(curve.best, color="k", ls="--", lw=1, label=f"chosen β = {curve.best:g}")
    )
    ax.set(
        xlabel="β (fraction of hardest samples dropped)",
        ylabel="held-out pseudo-label accuracy (%)",
        title=f"label-free β search, prune rate {prune_rate:g}",
    )
    if truth is not None:
        twin = ax.twinx()
        lines += twin.plot(
            truth.betas,
            [100 * a for a in truth.test_accuracy],
            marker="s",
            color="tab:red",
            label=f"test accuracy (diagnostic, best β = {truth.best:g})",
        )
        twin.set_ylabel("target test accuracy (%)", color="tab:red")
    ax.legend(handles=lines, fontsize="small")
    fig.tight_layout()
    fig.savefig(out_dir / "beta_search.png", dpi=110)
    plt.close(fig)
