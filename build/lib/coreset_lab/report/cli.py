"""`coreset-lab-report DIR [DIR ...]`: tables and plots from every results.json below the DIRs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coreset_lab.report.gather import gather
from coreset_lab.report.plot import plot_accuracy
from coreset_lab.report.table import markdown, to_csv


def build_report(*roots: Path, out: Path | None = None) -> str:
    rows = gather(*roots)
    if not rows:
        raise SystemExit(
            f"coreset-lab-report: no results.json found below {', '.join(map(str, roots))}"
        )
    out = out or roots[0]
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows)
    (out / "report.md").write_text(text)
    (out / "report.csv").write_text(to_csv(rows))
    plot_accuracy(rows, out / "accuracy_vs_prune_rate.png")
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="coreset-lab-report",
        description="Gather results.json files below the DIRs into report.md, report.csv and "
        "accuracy_vs_prune_rate.png (final test accuracy, mean ± std over seeds; one row per "
        "method label and computation).",
    )
    p.add_argument(
        "dirs",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="sweep directories, e.g. outputs/multirun/<date>/<time> (several: one table, as "
        "the two sweeps of an UNSEEN table)",
    )
    p.add_argument("--out", type=Path, default=None, help="where to write (default: the first DIR)")
    args = p.parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        sys.exit(f"coreset-lab-report: not a directory: {', '.join(missing)}")
    print(build_report(*args.dirs, out=args.out))


if __name__ == "__main__":
    main()
