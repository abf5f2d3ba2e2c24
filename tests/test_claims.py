"""The claims check: verdicts from seed-paired comparisons, score statistics, and the report
written from real (tiny) runs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coreset_lab.report.claims import (
    BINS,
    Claims,
    Verdict,
    combine,
    compare,
    peak_share,
    score_runs,
    seed_to_seed,
)
from coreset_lab.report.gather import gather
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
FAST = ["trainer=debug", "trainer.proxy_epochs=3", "trainer.target_iterations=30"]


def above(d: float) -> bool:
    return d > 0


def test_a_comparison_holds_only_when_every_seed_agrees():
    a = {0: 80.0, 1: 81.0, 2: 79.0}
    assert compare(a, {0: 79.0, 1: 80.0, 2: 78.5}, above).verdict == "holds"
    assert compare(a, {0: 81.0, 1: 82.0, 2: 80.0}, above).verdict == "does not hold"
    assert compare(a, {0: 79.0, 1: 82.0, 2: 78.0}, above).verdict == "inconclusive"
    two_seeds = compare(a, {0: 70.0, 1: 70.0}, above)
    assert two_seeds.verdict == "not measured" and "2 seed(s)" in two_seeds.measured
    assert (
        "80.00 ± 1.00 vs 79.17 ± 0.76 (diff +0.83, n=3)"
        in compare(a, {0: 79.0, 1: 80.0, 2: 78.5}, above).measured
    )


def test_class_aware_budgets_hold_when_their_per_class_spread_is_lower():
    """The class-aware run is the first number (it names the comparison), the plain run second."""

    def row(method, seed, per_class):
        accuracy = float(np.mean(per_class))
        return {"method": method, "dataset": "d", "prune_rate": 0.9, "seed": seed,
                "test_accuracy": accuracy, "per_class_accuracy": per_class}  # fmt: skip

    even, uneven = [0.8, 0.8, 0.7], [0.95, 0.9, 0.45]
    rows = [row("unseen-s4-margin-classaware", s, even) for s in range(3)]
    rows += [row("unseen-s4-margin", s, uneven) for s in range(3)]
    verdict = Claims(rows, {}).class_spread()
    assert verdict.verdict == "holds", verdict
    assert verdict.measured.startswith(
        f"unseen-s4-margin-classaware p=0.9: {100 * np.std(even):.2f}"
    )
    swapped = [
        row(r["method"], r["seed"], uneven if "aware" in r["method"] else even) for r in rows
    ]
    assert Claims(swapped, {}).class_spread().verdict == "does not hold"


def test_combined_verdicts_say_where_they_differ():
    yes, no = Verdict("holds", "x"), Verdict("does not hold", "y")
    missing = Verdict("not measured", "z")
    assert combine([("p=0.7", yes), ("p=0.9", yes)]).verdict == "holds"
    mixed = combine([("p=0.7", no), ("p=0.9", yes)]).verdict
    assert mixed == "mixed: does not hold at p=0.7; holds at p=0.9"
    assert combine([("p=0.7", missing), ("p=0.9", no)]).verdict == "does not hold (where measured)"
    assert combine([("p=0.7", missing)]).verdict == "not measured"
    both = combine([("vs a", combine([("p=0.7", no), ("p=0.9", missing)])), ("vs b", yes)])
    assert both.verdict == "mixed: does not hold at vs a p=0.7; holds at vs b (where measured)"
    # a combination of mixed parts reads as one flat list, not "mixed: mixed: ..."
    nested = combine([("x", combine([("p=0.7", yes), ("p=0.9", no)])), ("y", yes)])
    assert nested.verdict == "mixed: holds at x p=0.7, y; does not hold at x p=0.9"
    assert compare({}, {0: 1.0}, above).measured == "not run"


def test_score_statistics():
    rng = np.random.default_rng(0)
    spread = rng.uniform(size=10_000)
    piled = np.concatenate([np.zeros(9_000), rng.uniform(size=1_000)])
    assert peak_share(spread) == pytest.approx(1 / BINS, rel=0.2)
    assert peak_share(piled) > 0.9
    base = rng.normal(size=2_000)
    stable = [base + 0.1 * rng.normal(size=2_000) for _ in range(3)]
    unstable = [base + 3.0 * rng.normal(size=2_000) for _ in range(3)]
    assert seed_to_seed(stable) > 0.98 > 0.5 > seed_to_seed(unstable)


def _row(method, rate, seed, acc, **extra):
    return {"status": "ok", "method": method, "dataset": "d", "prune_rate": rate, "seed": seed,
            "test_accuracy": acc, "cell_id": method, "identity": {}, **extra}  # fmt: skip


def test_claims_read_rows_by_label_rate_and_seed():
    rows = [_row("full", 0.0, s, 0.90) for s in range(3)]
    for s in range(3):
        rows += [_row("random", r, s, 0.80 - 0.1 * (r == 0.9)) for r in (0.7, 0.9)]
        rows += [_row("ccs", r, s, 0.82 - 0.1 * (r == 0.9)) for r in (0.7, 0.9)]
        rows += [_row("aum", 0.9, s, 0.20)]
        truth = {"beta": [0.0, 0.1, 0.2], "test_accuracy": [0.5, 0.6, 0.7], "best": 0.2}
        rows += [_row("elfs[pca]", r, s, 0.85, beta=0.1, beta_truth=truth) for r in (0.7, 0.9)]
    claims = {c["claim"]: c for c in Claims(rows, {}).all()}
    assert claims["elfs[pca] beats random at p ≥ 0.7"]["verdict"] == "holds"
    assert claims["CCS ≥ random at every rate"]["verdict"] == "holds"
    collapse = claims["hard-only (AUM, hardest kept) collapses at high rates"]
    assert collapse["verdict"] == "holds" and "p=0.9" in collapse["measured"]
    within = claims["the label-free β is within one grid step of the test-label β"]
    assert within["verdict"] == "holds" and "chosen 0.1, test-label best 0.2" in within["measured"]
    assert claims["beats D2 and prototypicality on the same encoder"]["verdict"] == "not measured"


@pytest.mark.slow
def test_claims_report_from_real_runs(tmp_path):
    """Two tiny real sweeps (digits) laid out as the claims tables; scripts/claims.py judges the
    CCS and UNSEEN score claims from them and leaves what was not run as not measured."""
    root = tmp_path / "claims"
    tables = {
        "table": ["method=random,ccs,aum,full", "selector.prune_rate=0.5"],
        "scores": ["method=fitting,unseen_holdout", "scorer=margin", "evaluate=false"],
    }
    for name, sweep in tables.items():
        r = run_cli("-m", *FAST, *sweep, "seed=0,1,2", "logger=none",
                    f"hydra.sweep.dir={root / name}", cwd=tmp_path)  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
    (root / "not_a_table").mkdir()  # a script's own runs (no multirun.yaml) are never read
    assert len(score_runs(root)) == 6 and len(gather(root)) == 12  # scores never fill cells
    out = tmp_path / "tables"
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "claims.py"), "--root", str(root), "--out",
         str(out)], capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    claims = {c["claim"]: c for c in json.loads((out / "claims.json").read_text())}
    ccs = claims["CCS ≥ random at every rate"]
    assert ccs["verdict"] in ("holds", "does not hold", "inconclusive") and "n=3" in ccs["measured"]
    rank = claims["seed-to-seed rank correlation is higher for UNSEEN than fitting (paper: 0.92 "
                  "vs 0.43, CIFAR-100, Fig. 1b)"]  # fmt: skip
    assert "margin: Spearman held-out" in rank["measured"]
    assert claims["elfs[pca] beats random at p ≥ 0.7"]["verdict"] == "not measured"
    report = (out / "report.md").read_text()
    assert "Regime not checked" in report and "| full |" in report
    assert (out / "accuracy_vs_prune_rate.png").stat().st_size > 0


@pytest.mark.slow
def test_regime_check_and_pseudo_label_curve_scripts_run_on_digits(tmp_path):
    """Both scripts end to end through the runner on tiny settings: the criteria are measured
    (not met here: 2-epoch proxies) and the curve has one point per pseudo-label source."""
    tiny = ["experiment=fmnist_claims", "dataset=digits", "dataset.train_subset=null",
            "trainer=debug", "trainer.proxy_epochs=2", "trainer.target_iterations=10",
            "++protocol.search_iterations=5", f"paths.root_dir={tmp_path}"]  # fmt: skip

    def script(name, *args):
        cmd = [sys.executable, str(ROOT / "scripts" / name), *tiny, *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)

    r = script("regime_check.py", "--seeds", "0", "1", "--jobs", "2", "--out", str(tmp_path / "r"))
    assert r.returncode == 1, r.stderr[-2000:]  # a failed criterion exits 1
    regime = json.loads((tmp_path / "r" / "regime.json").read_text())
    assert [c["pass"] for c in regime["criteria"]][0] is False and len(regime["full_2x"]) == 2
    out = tmp_path / "c"
    r = script("pseudo_label_curve.py", "--seeds", "0", "--points", "oracle:0", "kmeans:pca",
               "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    curve = json.loads((out / "pseudo_label_curve.json").read_text())
    assert curve["points"]["oracle:0"]["label_accuracy"] == [1.0]
    assert 0 < curve["points"]["kmeans:pca"]["label_accuracy"][0] < 1
    assert (out / "pseudo_label_curve.png").stat().st_size > 0
