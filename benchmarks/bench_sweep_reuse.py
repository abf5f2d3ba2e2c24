"""What the shared artifact store saves on a sweep: models trained and wall time, store vs none.

Runs the same multirun twice (3 prune rates x 2 seeds x 2 methods by default) into fresh
directories: once with the shared store, once with `cache=false`, and counts from every job's
results.json how many models were trained.

    python benchmarks/bench_sweep_reuse.py                      # digits, default recipe
    python benchmarks/bench_sweep_reuse.py dataset=fashion_mnist trainer=fmnist_cpu ...
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["method=el2n,aum", "selector.prune_rate=0.5,0.7,0.9", "seed=0,1", "logger=none"]


def sweep(root: Path, cache: bool, extra: list[str]) -> tuple[float, int, int]:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "coreset_lab",
            "-m",
            *SWEEP,
            *extra,
            f"cache={str(cache).lower()}",
            f"paths.store_dir={root / 'store'}",
            f"hydra.sweep.dir={root / 'sweep'}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    results = [json.loads(p.read_text()) for p in (root / "sweep").rglob("results.json")]
    built = sum(r["cost"]["models_built_this_run"] for r in results)
    return seconds, built, len(results)


def main() -> None:
    extra = sys.argv[1:]
    rows = []
    for cache in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append((cache, *sweep(Path(tmp), cache, extra)))
    print(f"sweep: {' '.join(SWEEP)} {' '.join(extra)}")
    print("store      | jobs | scoring models trained | wall time")
    for cache, seconds, built, jobs in rows:
        label = "shared" if cache else "off"
        print(f"{label:<10} | {jobs:>4} | {built:>22} | {seconds:7.1f} s")
    print(f"speed-up of the shared store: {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
