"""The claims check on a lent GPU: all 60,000 Fashion-MNIST images, within its few minutes.

The same regime check and claims tables as on the CPU (docs/claims.md, experiment=fmnist_claims_*),
at p = 0.9 and seeds 0 1 2, with the regime scaled to the full training set (REGIME below:
trainer=fmnist60k_claims, small_cnn width 64). Each step is a subprocess with its own time limit
(gpu_check.run_plan), most valuable first, so a run stopped by its budget still reports what it
finished:

  group      tests/test_gpu.py -k vmapped: a vmapped group equals separate trainings (bf16 too)
  regime     scripts/regime_check.py: proxies memorise? full converged? random below full?
  ccs        random, CCS, AUM hard-only, full (experiment=fmnist_claims_ccs)
  elfs       ELFS on k-means of PCA pseudo-labels and the oracle (experiment=fmnist_claims_elfs)
  baselines  D2 and prototypicality on the same embeddings (fmnist_claims_elfs_baselines)
  unseen     margin: fitting, held-out K = 5, incremental 4 stages (fmnist_claims_unseen)

Tables are Hydra sweeps under outputs/claims_60k/ (`--jobs` runs share the GPU at once), the
store is the project's, and `scripts/claims.py --root outputs/claims_60k` writes the report.
Then, with what time is left, `parallel` (bench_parallel_models.py: fold models one by one, as
one vmapped group, in processes). To $OUT (default ./gpu_claims_out): report.md, claims.json,
accuracy_vs_prune_rate.png, summary.json (every step's status and time), log.txt, runs.tar.gz
(every run's results.json, config and log), gpu_tests.json and parallel.json (measured values).

`--dry-run` runs the same steps on the CPU at toy sizes (a 500-image subset, width 8, a few
steps; the GPU test skips), so the script is known to work before a GPU is lent:

    source .device/env.sh && python3 benchmarks/gpu_claims.py        # on the lent machine
    python benchmarks/gpu_claims.py --dry-run --out /tmp/gpu_claims  # here
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from gpu_check import (
    DRY_SIZES,
    GPU_SIZES,
    REPO,
    Step,
    fashion_mnist_args,
    fashion_mnist_root,
    run_plan,
)

RATE = "selector.prune_rate=0.9"
REPORT = ("report.md", "claims.json", "accuracy_vs_prune_rate.png")
GPU_REGIME = ["dataset.train_subset=null", "model.kwargs.width=64", "trainer=fmnist60k_claims",
              "++protocol.search_iterations=1000"]  # fmt: skip
DRY_REGIME = ["dataset.train_subset=500", "model.kwargs.width=8", "trainer.proxy_epochs=2",
              "trainer.target_iterations=20", "++protocol.search_iterations=4",
              "++protocol.beta_grid=[0.0,0.2]"]  # fmt: skip
# name: (table experiment, its overrides, own limit s, minimum s); random and full data come
# from the regime check's runs (the store gives the ccs table the same computations back)
TABLES = {
    "ccs": ("fmnist_claims_ccs", ["method=random,ccs,aum,full"], 120, 30),
    "elfs": ("fmnist_claims_elfs", [], 150, 40),
    "baselines": ("fmnist_claims_elfs_baselines", [], 60, 20),
    "unseen": ("fmnist_claims_unseen", ["scorer=margin"], 200, 40),
}


def regime(dry: bool, work: Path) -> list[str]:
    if dry:  # its own store: toy artifacts stay out of the project's
        return [*DRY_REGIME, f"paths.store_dir={work / 'store'}"]
    return [*GPU_REGIME, f"dataset.root={fashion_mnist_root()}"]


def plan(dry: bool, reg: list[str], root: Path, jobs: int, work: Path) -> list[Step]:
    py = sys.executable
    group = [py, "-m", "pytest", "-q", "-rA", "tests/test_gpu.py", "-k", "vmapped",
             "-p", "no:cacheprovider"]  # fmt: skip
    check = [py, "scripts/regime_check.py", "experiment=fmnist_claims", *reg, "--seeds", "0",
             "1", "2", "--jobs", str(jobs), "--out", str(root / "regime")]  # fmt: skip
    steps = [
        Step("group", group, 60, 20, ok_codes=(0, 5) if dry else (0,)),  # 5: all skipped
        Step("regime", check, 200, 60, ok_codes=(0, 1)),  # 1: a criterion failed (reported)
    ]
    # run directories named by what the table varies, not by the regime every run shares
    same = ",".join(
        ["experiment", "hydra.launcher.n_jobs", *(o.split("=")[0].lstrip("+~") for o in reg)]
    )
    for name, (experiment, extra, limit, minimum) in TABLES.items():
        argv = [py, "-m", "coreset_lab", "-m", f"experiment={experiment}", *reg, RATE, *extra,
                "hydra/launcher=local_processes", f"hydra.launcher.n_jobs={jobs}",
                f"hydra.sweep.dir={root / experiment}",
                f"hydra.job.config.override_dirname.exclude_keys=[{same}]"]  # fmt: skip
        steps.append(Step(name, argv, limit, minimum))
    report = [py, "scripts/claims.py", "--root", str(root), "--out", str(work / "report")]
    # with what time is left: does a vmapped group of fold models beat training them one by one?
    sizes = DRY_SIZES["parallel"] if dry else [*fashion_mnist_args(), *GPU_SIZES["parallel"]]
    parallel = [py, "benchmarks/bench_parallel_models.py", *sizes, "--json",
                str(work / "parallel.json")]  # fmt: skip
    return [*steps, Step("report", report, 60, 15), Step("parallel", parallel, 60, 25)]


def pack(root: Path, tar: Path) -> None:
    """Every run's results.json, resolved config and log, and the regime check's JSON."""
    keep = ("results.json", "config.yaml", "cli.log", "regime.json", "multirun.yaml")
    with tarfile.open(tar, "w:gz") as out:
        for path in sorted(root.rglob("*")):
            if path.name in keep and "store" not in path.parts:
                out.add(path, arcname=str(path.relative_to(root.parent)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_claims_out"))
    p.add_argument("--budget", type=float, default=None, help="seconds (540; dry-run 900)")
    p.add_argument("--jobs", type=int, default=None, help="runs at once (GPU 6, dry-run 2)")
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        help="the tables' runs (outputs/claims_60k; dry-run: a temporary folder)",
    )
    args = p.parse_args()
    if importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None:
        # measured on the H200: without it every table step failed in a second
        p.error("the tables need hydra-joblib-launcher (hydra/launcher=local_processes): "
                "stage its wheel in .device/whl (README, On a GPU)")  # fmt: skip
    budget = args.budget or (900.0 if args.dry_run else 540.0)
    jobs = args.jobs or (2 if args.dry_run else 6)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "log.txt").write_text("")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu-claims-") as tmp:
        work = Path(tmp)
        root = args.root or (work / "claims_60k" if args.dry_run else REPO / "outputs/claims_60k")
        overrides = regime(args.dry_run, work)
        steps = run_plan(plan(args.dry_run, overrides, root, jobs, work), budget, args.out, work)
        for path in [*(work / "report" / n for n in REPORT), work / "parallel.json",
                     work / "gpu_tests.json"]:  # fmt: skip
            if path.exists():
                (args.out / path.name).write_bytes(path.read_bytes())
        if root.exists():
            pack(root, args.out / "runs.tar.gz")
    summary = {"mode": "dry-run" if args.dry_run else "gpu", "budget_s": budget, "jobs": jobs,
               "regime": overrides, "steps": steps,
               "total_s": round(time.monotonic() - start, 1), "gpu": _gpu_name()}  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    for s in steps:
        print(f"[gpu_claims] {s['name']}: {s['status']} {s.get('seconds', '')}", flush=True)
    return 0 if all(s["status"] == "ok" for s in steps) else 1


def _gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)  # fmt: skip
        return out.stdout.strip() or "none"
    except (OSError, subprocess.TimeoutExpired):
        return "none"


if __name__ == "__main__":
    sys.exit(main())
