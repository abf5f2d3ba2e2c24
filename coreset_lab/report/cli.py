"""`coreset-lab-report DIR`: tables and plots from every results.json below DIR."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coreset_lab.report.gather import gather
from coreset_lab.report.plot import plot_accuracy
from coreset_lab.report.table import markdown, to_csv


def build_report(root: Path, out: Path | None = None) -> str:
    rows = gather(root)
    if not rows:
        raise SystemExit(f"coreset-lab-report: no results.json found below {root}")
    out = out or root
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows)
    (out / "report.md").write_text(text)
    (out / "report.csv").write_text(to_csv(rows))
    plot_accuracy(rows, out / "accuracy_vs_prune_rate.png")
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="coreset-lab-report",
        description="Gather results.json files below DIR into report.md, report.csv and "
        "accuracy_vs_prune_rate.png (final test accuracy, mean ± std over seeds).",
    )
    p.add_argument("dir", type=Path, help="a sweep directory, e.g. outputs/multirun/<date>/<time>")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: DIR)")
    args = p.parse_args(argv)
    if not args.dir.is_dir():
        sys.exit(f"coreset-lab-report: {args.dir} is not a directory")
    print(build_report(args.dir, args.out))


if __name__ == "__main__":
    main()
