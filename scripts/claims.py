"""The claims check: outputs/tables/claims/report.md from the claims tables' runs.

Run the regime check and the tables first (each command resumes; finished runs are reused):

    python scripts/regime_check.py experiment=fmnist_claims --seeds 0 1 2 --jobs 2 \\
        --out outputs/claims/regime
    for t in ccs elfs elfs_baselines elfs_truth unseen_scores unseen; do
        coreset-lab -m experiment=fmnist_claims_$t hydra/launcher=local_processes
    done
    python scripts/claims.py

Writes report.md (the regime's criteria, every table row beside random, full and the oracle,
one line per claim with its verdict), claims.json and accuracy_vs_prune_rate.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from collections import Counter
from pathlib import Path

from coreset_lab.report.claims import BINS, COLLAPSE_POINTS, MIN_SEEDS, check
from coreset_lab.report.plot import plot_accuracy
from coreset_lab.report.table import markdown


def regime_section(path: Path) -> list[str]:
    if not path.exists():
        return ["**Regime not checked** (no regime.json): no claim below can be trusted yet. "
                "Run scripts/regime_check.py first.", ""]  # fmt: skip
    try:
        regime = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:  # half written: the criteria are unknown
        print(f"claims.py: error: cannot read {path} ({err}): rerun scripts/regime_check.py",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2) from None
    ok = all(c["pass"] for c in regime["criteria"])
    lines = [
        f"Regime: `{' '.join(regime['overrides'])}`, seeds {regime['seeds']}, target budget "
        f"{regime['target_iterations']} iterations. "
        + ("**All three criteria hold.**" if ok else "**A criterion fails: read every verdict "
           "below with that in mind.**"),
        "",
        "| criterion | measured | needed | |",
        "|---|---|---|---|",
    ]  # fmt: skip
    for c in regime["criteria"]:
        lines.append(f"| {c['criterion']} | {c['value']:.4f} | {c['needed']} | "
                     f"{'PASS' if c['pass'] else 'FAIL'} |")  # fmt: skip
    per_seed = zip(regime["seeds"], regime["proxy_train_accuracy"], regime["full"],
                   regime["full_2x"], regime["random_0.9"], strict=True)  # fmt: skip
    lines += ["", "| seed | proxy train acc | full | full, 2x budget | random p=0.9 |",
              "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {s} | {100 * m:.2f} | {100 * f:.2f} | {100 * f2:.2f} | {100 * r:.2f} |"
              for s, m, f, f2, r in per_seed]  # fmt: skip
    return [*lines, ""]


def curve_section(curve_dir: Path, out: Path) -> list[str]:
    """ELFS accuracy against pseudo-label accuracy (scripts/pseudo_label_curve.py), if run."""
    path = curve_dir / "pseudo_label_curve.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    shutil.copy(curve_dir / "pseudo_label_curve.png", out / "pseudo_label_curve.png")
    mean = statistics.mean
    lines = [
        f"## How good must the pseudo-labels be? (p = {data['rate']:g}, seeds {data['seeds']})",
        "",
        "| pseudo-labels | pseudo-label accuracy (Hungarian) | ELFS test accuracy |",
        "|---|---|---|",
    ]
    for name, p in data["points"].items():
        lines.append(f"| {name} | {100 * mean(p['label_accuracy']):.1f} | "
                     f"{100 * mean(p['test_accuracy']):.2f} |")  # fmt: skip
    for name, accs in data["references"].items():
        lines.append(f"| ({name}) | | {100 * mean(accs):.2f} |")
    return [*lines, "", "![ELFS vs pseudo-label accuracy](pseudo_label_curve.png)", ""]


def code_section(rows: list[dict]) -> list[str]:
    """Which code computed the rows: one stage-code hash, or a warning naming each."""
    if not rows:
        return []
    by_code = Counter(str((r.get("identity") or {}).get("code")) for r in rows)
    commits = sorted({str(r.get("git_commit")) for r in rows})
    if len(by_code) == 1:
        [(code, n)] = by_code.items()
        return [f"Code: every one of the {n} evaluated runs has stage-code hash `{code}` "
                f"(commits {', '.join(commits)}).", ""]  # fmt: skip
    parts = ", ".join(f"`{c}` ({n} runs)" for c, n in by_code.most_common())
    return [f"**Code: the runs come from {len(by_code)} different stage-code hashes** ({parts}): "
            "a comparison across them compares code as well as methods.", ""]  # fmt: skip


def claims_table(claims: list[dict]) -> list[str]:
    lines = ["| paper | claim | verdict | measured (mean ± std over seeds, %) | criterion |",
             "|---|---|---|---|---|"]  # fmt: skip
    for c in claims:
        lines.append(f"| {c['paper']} | {c['claim']} | **{c['verdict']}** | {c['measured']} | "
                     f"{c['criterion']} |")  # fmt: skip
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("outputs/claims"), help="the tables' runs")
    p.add_argument("--out", type=Path, default=Path("outputs/tables/claims"))
    args = p.parse_args()
    if not args.root.is_dir():
        p.error(f"{args.root} does not exist: run the claims tables first (see --help)")
    # a table is a Hydra sweep directory; regime/ and pseudo_label_curve/ hold the scripts' own
    # runs (full at twice the budget, ELFS on other pseudo-labels: other computations)
    tables = sorted(d.parent for d in args.root.glob("*/multirun.yaml"))
    claims, rows = check(*tables)
    args.out.mkdir(parents=True, exist_ok=True)
    text = [
        "# Claims check",
        "",
        "Each paper's claims measured in one paper-shaped regime (docs/claims.md). A comparison "
        f"holds when it holds for every seed (≥ {MIN_SEEDS} seeds, paired by seed), does not "
        "hold when it holds for none, and is inconclusive when seeds disagree. Hard-only "
        f"'collapses' means ≥ {COLLAPSE_POINTS:g} points below random; score dispersion is the "
        f"share of samples in the fullest of {BINS} equal-width score bins. Final-step test "
        "accuracy, never the best seen. `elfs-oracle…` rows read ground-truth labels (a "
        "diagnostic ceiling, not a method).",
        "",
        "## Regime",
        "",
        *regime_section(args.root / "regime" / "regime.json"),
        *code_section(rows),
        "## Claims",
        "",
        *claims_table(claims),
        "",
        *curve_section(args.root / "pseudo_label_curve", args.out),
        "## Every table row",
        "",
        markdown(rows) if rows else "(no evaluated runs yet)",
    ]
    (args.out / "report.md").write_text("\n".join(text) + "\n")
    (args.out / "claims.json").write_text(json.dumps(claims, indent=2))
    if rows:
        plot_accuracy(rows, args.out / "accuracy_vs_prune_rate.png")
    print("\n".join(claims_table(claims)))
    print(f"wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
