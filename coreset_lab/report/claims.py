"""The claims check: each paper's claims, measured in one regime, with a verdict.

Inputs are the run directories of the claims tables (experiment=fmnist_claims_*): evaluated runs
give accuracies (grouped into table rows exactly as the report does, coreset_lab/report/table.py),
selection-only runs (evaluate=false) give the scores the UNSEEN score claims are about, and
`regime.json` (scripts/regime_check.py) says whether the regime is one where methods can differ.

A comparison "A beats B" is judged seed by seed (the runs of one seed share the data subset and
the target recipe): it **holds** when A - B exceeds the margin for every seed, **does not hold**
when it does so for no seed, and is **inconclusive** when seeds disagree. Fewer than
`MIN_SEEDS` seeds on either side: **not measured**. Nothing here tunes anything: a claim that
does not hold is reported as measured.
"""

from __future__ import annotations

import itertools
import json
import logging
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from coreset_lab.report.gather import gather
from coreset_lab.report.table import assign_rows, rate_of

log = logging.getLogger(__name__)

MIN_SEEDS = 3
SCORERS = ("margin", "entropy", "least_confidence", "el2n")
HIGH_RATES = (0.7, 0.9)
COLLAPSE_POINTS = 5.0  # "hard-only collapses": at least this far below random, every seed
CLOSE_POINTS = 1.0  # "oracle-ELFS comes close to CCS": at most this far below CCS, every seed
CLASS_AWARE = (
    "-classaware"  # label suffix of protocol.class_aware=true (coreset_lab/run/identity.py)
)
BINS = 50  # dispersion: the share of samples in the fullest of 50 equal-width score bins

Seeds = dict[int, float]  # seed -> test accuracy (%)


@dataclass
class Verdict:
    verdict: str  # holds | does not hold | inconclusive | not measured
    measured: str
    # a combined verdict's judged comparisons, (where, verdict), so that a combination of
    # combinations still reads as one flat list ("holds at margin p=0.7, entropy p=0.7; ...")
    leaves: tuple[tuple[str, str], ...] = ()

    def row(self, paper: str, claim: str, criterion: str) -> dict:
        return {"paper": paper, "claim": claim, "measured": self.measured,
                "verdict": self.verdict, "criterion": criterion}  # fmt: skip


NOT_MEASURED = "not measured"
NOT_RUN = "not run"


# --- what the runs measured ---------------------------------------------------------------------


def accuracy_arms(rows: list[dict]) -> dict[tuple[str, float], Seeds]:
    """(table row name, prune rate) -> {seed: accuracy in %}. `full` is filed at every rate."""
    names, _ = assign_rows(rows)
    arms: dict[tuple[str, float], Seeds] = defaultdict(dict)
    for r in rows:
        if r.get("status", "ok") == "ok":
            arms[names[id(r)], rate_of(r)][int(r["seed"])] = 100 * float(r["test_accuracy"])
    return dict(arms)


def score_runs(*roots: Path) -> dict[tuple[str, int], np.ndarray]:
    """(label, seed) -> scores of the selection-only runs (evaluate=false) below `roots`."""
    out = {}
    for path in sorted(p for root in roots for p in Path(root).rglob("results.json")):
        try:
            r = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:  # as gather: a run killed while writing
            log.warning("skipping unreadable %s: %s", path, err)
            continue
        scores = path.parent / "scores.npy"
        if r.get("status") == "ok" and r.get("test_accuracy") is None and scores.exists():
            out[r["method"], int(r["seed"])] = np.load(scores)
    return out


def peak_share(scores: np.ndarray) -> float:
    """Share of samples in the fullest of BINS equal-width bins over the score range: 1 / BINS
    for evenly spread scores, near 1 when almost all scores pile up in one place (Fig. 1a)."""
    counts, _ = np.histogram(scores, bins=BINS)
    return float(counts.max() / counts.sum())


def seed_to_seed(by_seed: list[np.ndarray]) -> float:
    """Mean Spearman correlation between the scores of every pair of seeds (Fig. 1b)."""
    pairs = itertools.combinations(by_seed, 2)
    return float(np.mean([spearmanr(a, b).statistic for a, b in pairs]))


# --- judging ------------------------------------------------------------------------------------


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def compare(a: Seeds | None, b: Seeds | None, passes: Callable[[float], bool]) -> Verdict:
    """Seed-paired differences a - b (points); `passes(d)` says whether one seed supports it."""
    seeds = sorted(set(a or {}) & set(b or {}))
    if not seeds:
        return Verdict(NOT_MEASURED, NOT_RUN)
    if len(seeds) < MIN_SEEDS:
        return Verdict(NOT_MEASURED, f"{len(seeds)} seed(s) with both sides (needs {MIN_SEEDS})")
    diffs = [a[s] - b[s] for s in seeds]
    ok = [passes(d) for d in diffs]
    verdict = "holds" if all(ok) else "does not hold" if not any(ok) else "inconclusive"
    measured = (f"{_mean_sd([a[s] for s in seeds])} vs {_mean_sd([b[s] for s in seeds])} "
                f"(diff {statistics.mean(diffs):+.2f}, n={len(seeds)})")  # fmt: skip
    return Verdict(verdict, measured)


def combine(parts: list[tuple[str, Verdict]]) -> Verdict:
    """One verdict over several rates or scorers: the shared verdict, else 'mixed: ...' naming
    where each verdict holds; parts not measured are named in the text and marked '(where
    measured)' in the verdict."""
    measured = "; ".join(f"{where}: {v.measured}" for where, v in parts)
    judged = [(where, v) for where, v in parts if v.verdict != NOT_MEASURED]
    if not judged:
        partial = [f"{w}: {v.measured}" for w, v in parts if v.measured != NOT_RUN]
        return Verdict(NOT_MEASURED, "; ".join(partial) or NOT_RUN)
    partly = " (where measured)"
    leaves = [(f"{where} {w}", leaf) for where, v in judged for w, leaf in v.leaves] + [
        (where, v.verdict.removesuffix(partly)) for where, v in judged if not v.leaves
    ]
    by_verdict: dict[str, list[str]] = defaultdict(list)
    for where, leaf in leaves:
        by_verdict[leaf].append(where)
    incomplete = len(judged) < len(parts) or any(v.verdict.endswith(partly) for _, v in judged)
    if len(by_verdict) == 1:
        verdict = next(iter(by_verdict))
    else:
        verdict = "mixed: " + "; ".join(f"{k} at {', '.join(w)}" for k, w in by_verdict.items())
    return Verdict(verdict + (partly if incomplete else ""), measured, tuple(leaves))


class Claims:
    """Every claim of the issue, judged from the runs below `roots`."""

    def __init__(self, rows: list[dict], scores: dict[tuple[str, int], np.ndarray]):
        self.rows, self.arms, self.scores = rows, accuracy_arms(rows), scores
        rates = {rate for _, rate in self.arms if rate > 0}
        self.rates = sorted(rates)
        self.high = [r for r in self.rates if r >= min(HIGH_RATES)]

    def row_name(self, label: str, option: str | None = None) -> str | None:
        """The table row of `label`: when a label covers several computations (rows named
        `label {option=value, ...}`), the one whose name holds `option`, else the one holding
        no `=false` switch (the method as configured by default, e.g. ELFS with its β search)."""
        names = sorted({n for n, _ in self.arms if n.split(" {")[0] == label})
        if option is not None:
            return next((n for n in names if option in n), None)
        return next((n for n in names if "=false" not in n), None)

    def arm(self, label: str, rate: float, option: str | None = None) -> Seeds | None:
        name = self.row_name(label, option)
        return self.arms.get((name, 0.0 if label == "full" else rate))

    def beats(self, a: str, b: str, rates, margin: float = 0.0, strict: bool = True,
              b_option: str | None = None) -> Verdict:  # fmt: skip
        def passes(d: float) -> bool:
            return d > margin if strict else d >= margin

        return combine([(f"p={r:g}", compare(self.arm(a, r), self.arm(b, r, b_option), passes))
                        for r in rates])  # fmt: skip

    # ELFS (Zheng et al., ICLR 2025) ----------------------------------------------------------

    def elfs(self, elfs: str = "elfs[pca]", oracle: str = "elfs-oracle0[pca]") -> list[dict]:
        return [
            self.beats(elfs, "random", self.high).row(
                "ELFS", f"{elfs} beats random at p ≥ 0.7", "ELFS > random, every seed"),
            combine([(f"vs {b}", self.beats(elfs, b, self.high)) for b in
                     (elfs.replace("elfs", "d2"), elfs.replace("elfs", "prototypicality"))]).row(
                "ELFS", "beats D2 and prototypicality on the same encoder",
                "ELFS > baseline, every seed"),
            self.beats(elfs, elfs, self.high, b_option="beta_search=false").row(
                "ELFS", "β > 0 (searched) beats β = 0 at high rates",
                "searched β > fixed β = 0 (experiment=fmnist_claims_elfs_beta0), every seed"),
            self.beats(oracle, "ccs", self.high, margin=-CLOSE_POINTS, strict=False).row(
                "ELFS", "oracle-ELFS (ground-truth pseudo-labels) comes close to supervised CCS",
                f"oracle ≥ CCS - {CLOSE_POINTS:g} point, every seed"),
            self.beta_truth(elfs, oracle).row(
                "ELFS", "the label-free β is within one grid step of the test-label β",
                "|chosen - best by test accuracy| ≤ one grid step, every cell"),
        ]  # fmt: skip

    def beta_truth(self, *labels: str) -> Verdict:
        parts = []
        for r in self.rows:
            truth = r.get("beta_truth")
            if r["method"] not in labels or not truth:
                continue
            grid = truth["beta"]
            step = min(np.diff(sorted(grid))) if len(grid) > 1 else 0.0
            ok = abs(r["beta"] - truth["best"]) <= step + 1e-9
            curve = zip(grid, truth["test_accuracy"], strict=True)
            accs = ", ".join(f"{b:g}: {100 * a:.1f}" for b, a in curve)
            where = f"{r['method']} p={rate_of(r):g} seed {r['seed']}"
            parts.append((ok, f"{where}: chosen {r['beta']:g}, test-label best {truth['best']:g} "
                              f"({accs})"))  # fmt: skip
        if not parts:
            return Verdict(NOT_MEASURED, "no run with protocol.beta_truth=true")
        ok = [p[0] for p in parts]
        verdict = "holds" if all(ok) else "does not hold" if not any(ok) else "inconclusive"
        return Verdict(verdict, "; ".join(p[1] for p in parts))

    # UNSEEN ----------------------------------------------------------------------------------

    def unseen(self) -> list[dict]:
        return [
            self.score_claim(peak_share, lambda held, fit: held < fit, "peak-bin share").row(
                "UNSEEN", "held-out scores are less densely concentrated than fitting scores "
                "(Fig. 1a)", f"share of samples in the fullest of {BINS} bins: held-out < "
                "fitting, every scorer"),
            self.rank_claim().row(
                "UNSEEN", "seed-to-seed rank correlation is higher for UNSEEN than fitting "
                "(paper: 0.92 vs 0.43, CIFAR-100, Fig. 1b)",
                "mean pairwise Spearman over seeds: held-out > fitting, every scorer"),
            combine([(s, self.beats(f"unseen-s1-{s}", s, self.high)) for s in SCORERS]).row(
                "UNSEEN", "held-out (K folds) improves each base scorer over its fitting version",
                "held-out > fitting, every seed, each scorer and high rate"),
            combine([(s, self.beats(f"unseen-s4-{s}", f"unseen-s1-{s}", self.high))
                     for s in SCORERS]).row(
                "UNSEEN", "incremental (4 steps) beats single-step",
                "incremental > single-step, every seed"),
            combine([(f"{s} vs {b}", self.beats(f"unseen-s4-{s}", b, self.high))
                     for s in SCORERS for b in ("random", "ccs")]).row(
                "UNSEEN", "UNSEEN beats random and CCS at high rates",
                "incremental UNSEEN > random and > CCS, every seed"),
            self.class_spread().row(
                "UNSEEN", "hard-class-aware budgets reduce the spread of per-class accuracy",
                "std over classes of test accuracy: class-aware < not, every seed"),
        ]  # fmt: skip

    def score_claim(self, statistic, better, name: str) -> Verdict:
        parts = []
        for s in SCORERS:
            seeds = sorted(
                {seed for (label, seed) in self.scores if label == s}
                & {seed for (label, seed) in self.scores if label == f"unseen-s1-{s}"}
            )
            if len(seeds) < MIN_SEEDS:
                parts.append((s, Verdict(NOT_MEASURED, f"{len(seeds)} seed(s)")))
                continue
            fit = [statistic(self.scores[s, k]) for k in seeds]
            held = [statistic(self.scores[f"unseen-s1-{s}", k]) for k in seeds]
            ok = [better(h, f) for h, f in zip(held, fit, strict=True)]
            verdict = "holds" if all(ok) else "does not hold" if not any(ok) else "inconclusive"
            text = f"{name} held-out {np.mean(held):.3f} vs fitting {np.mean(fit):.3f}"
            parts.append((s, Verdict(verdict, text)))
        return combine(parts)

    def rank_claim(self) -> Verdict:
        parts = []
        for s in SCORERS:
            fit = [v for (label, _), v in sorted(self.scores.items()) if label == s]
            held = [v for (label, _), v in sorted(self.scores.items())
                    if label == f"unseen-s1-{s}"]  # fmt: skip
            if min(len(fit), len(held)) < MIN_SEEDS:
                parts.append((s, Verdict(NOT_MEASURED, f"{min(len(fit), len(held))} seed(s)")))
                continue
            f, h = seed_to_seed(fit), seed_to_seed(held)
            verdict = "holds" if h > f else "does not hold"
            parts.append((s, Verdict(verdict, f"Spearman held-out {h:.2f} vs fitting {f:.2f}")))
        return combine(parts)

    def class_spread(self) -> Verdict:
        """Std over classes of per-class test accuracy: `unseen-s4-X-classaware` (first) vs
        `unseen-s4-X`."""
        spread: dict[tuple[str, float], Seeds] = defaultdict(dict)
        for r in self.rows:
            if r.get("per_class_accuracy") and r["method"].startswith("unseen-s"):
                per_class = [a for a in r["per_class_accuracy"] if a is not None]
                spread[r["method"], rate_of(r)][int(r["seed"])] = 100 * float(np.std(per_class))
        aware = sorted({n for n, _ in spread if n.endswith(CLASS_AWARE)})
        parts = [
            (f"{name} p={rate:g}", compare(spread.get((name, rate)),
                                            spread.get((name.removesuffix(CLASS_AWARE), rate)),
                                            lambda d: d < 0))
            for name in aware for rate in self.high
        ]  # fmt: skip
        return combine(parts) if parts else Verdict(NOT_MEASURED, "no class-aware run")

    # CCS (Zheng et al., ICLR 2023) -----------------------------------------------------------

    def ccs(self) -> list[dict]:
        return [
            self.beats("ccs", "random", self.rates, strict=False).row(
                "CCS", "CCS ≥ random at every rate", "CCS ≥ random, every seed and rate"),
            self.beats("random", "aum", [r for r in self.rates if r >= 0.9],
                       margin=COLLAPSE_POINTS).row(
                "CCS", "hard-only (AUM, hardest kept) collapses at high rates",
                f"random - hard-only > {COLLAPSE_POINTS:g} points at p = 0.9, every seed"),
        ]  # fmt: skip

    def all(self) -> list[dict]:
        return [*self.elfs(), *self.unseen(), *self.ccs()]


def check(*roots: Path) -> tuple[list[dict], list[dict]]:
    """(claims, evaluated rows) from every run below `roots`."""
    rows = gather(*roots)
    return Claims(rows, score_runs(*roots)).all(), rows
