"""One command that proves the GPU paths and measures them, within a lent GPU's few minutes.

In order, each step a subprocess with its own time limit, none stopped by another's failure:

  env       the machine: GPU, driver, torch/CUDA/cuDNN, faiss build, libraries (gpu_env.py)
  tests     tests/test_gpu.py (marker gpu): engines agree, vmapped groups, compile reuse, GPU
            k-means/k-NN vs the CPU, bf16 ViT embeddings; their measured values are kept
  engines   bench_engines.py: fast (+- compile) vs Lightning vs a plain DataLoader loop on
            CIFAR-sized data, cifar_resnet18 at batch 512: img/s and share of the bf16 peak
  parallel  bench_parallel_models.py: 5 fold models sequential vs one vmapped group vs processes
  e2e       bench_end_to_end.py --cifar-sized: ELFS and UNSEEN (K = 5), paper and fast scoring
            recipes, with short trainings
  cell      bench_table_cell.py: one CIFAR-10-sized table cell per recipe, extrapolated
  knn       bench_knn_scale.py: GPU k-NN at 100k-400k x 384, extrapolated to ImageNet's 1.28 M

The whole run keeps to --budget seconds (default 470): a step gets its own limit, or less to
keep a minimum for each step after it (or, failing that, whatever is left), and a step past
its limit is stopped with
everything it started and recorded as a timeout; benchmarks write their JSON after every row,
so a stopped one still reports what it finished. At most 4 files go to $OUT (default
./gpu_check_out): summary.md (also printed at the end), summary.json (every step's status,
time and numbers), log.txt (every step's output) and junit.xml (the GPU tests).

`--dry-run` runs the same steps at toy sizes on the CPU (the GPU tests skip): CI runs it, so
the script is known to work before a GPU is lent. `--steps NAME ...` runs only those (to redo
the steps a first run had no time for, with a smaller --budget).

On the lent machine (after `bash ../shared/device/prepare.sh` here; carry: [".device"]):
    source .device/env.sh && python3 benchmarks/gpu_check.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gpu_check_report import summarize

REPO = Path(__file__).resolve().parent.parent
LOG_LIMIT = 2_000_000  # bytes of one step's output kept in log.txt (head and tail)


@dataclass
class Step:
    name: str
    argv: list[str]
    timeout: float  # its own limit, seconds
    minimum: float  # not started with less than this left
    result: str | None = None  # the JSON file it writes, under the work folder
    ok_codes: tuple[int, ...] = (0,)


def fashion_mnist_root() -> str:
    """Where env.sh (or Debian's dataset-fashion-mnist) put the Fashion-MNIST files."""
    return os.environ.get("FASHION_MNIST_ROOT") or "/usr/share/datasets/fashion-mnist"


def fashion_mnist_args() -> list[str]:
    """Fashion-MNIST for a benchmark where it is; else digits (noted in the workload)."""
    root = fashion_mnist_root()
    if Path(root).is_dir() and any(Path(root).glob("*idx*")):
        return ["--dataset", "fashion_mnist", "--root", root, "--train-subset", "10000"]
    return ["--dataset", "digits", "--train-subset", "0"]


# Each benchmark's arguments: on the GPU (sized to fit the budget) and in a dry run (toy sizes).
GPU_SIZES = {
    "engines": ["--cifar-sized", "--arch", "cifar_resnet18", "--width", "64", "--batch-size",
                "512", "--runs", "1", "--num-workers", "4",
                "--loops", "fast", "fast+compile", "lightning", "plain"],
    "parallel": ["--folds", "5", "--epochs", "2", "--runs", "2", "--processes", "2"],
    "e2e": ["--cifar-sized", "--proxy-epochs", "2", "--fast-proxy-epochs", "1",
            "--target-iterations", "300", "--only", "ELFS   fast", "UNSEEN fast"],
    "cell": ["--proxy-epochs", "1", "2", "--target-iterations", "100", "200"],
    "knn": ["--backends", "torch", "--sizes", "100000", "200000", "400000"],
}  # fmt: skip
DRY_SIZES = {
    "engines": ["--dataset", "digits", "--arch", "small_cnn", "--width", "8", "--runs", "1",
                "--loops", "fast", "lightning", "plain"],
    "parallel": ["--dataset", "digits", "--train-subset", "0", "--folds", "2", "--epochs", "1",
                 "--width", "8", "--runs", "1", "--warmup", "0", "--processes", "0"],
    "e2e": ["--toy", "--only", "ELFS   fast,", "UNSEEN fast, batched"],
    "cell": ["--toy", "--recipes", "fast", "--target-iterations", "10", "20"],
    "knn": ["--backends", "torch", "faiss", "--sizes", "1000", "2000"],
}  # fmt: skip
# name: (script, own limit s, minimum s)
BENCHMARKS = {
    "engines": ("bench_engines.py", 150, 30),
    "parallel": ("bench_parallel_models.py", 50, 20),
    "e2e": ("bench_end_to_end.py", 120, 30),
    "cell": ("bench_table_cell.py", 120, 30),
    "knn": ("bench_knn_scale.py", 40, 15),
}


STEP_NAMES = ["env", "tests", *BENCHMARKS]


def tests_step(dry: bool, work: Path) -> Step:
    argv = [sys.executable, "-m", "pytest", "-q", "-rA", "tests/test_gpu.py",
            "-p", "no:cacheprovider", f"--junitxml={work}/junit.xml"]  # fmt: skip
    if importlib.util.find_spec("pytest_timeout"):  # one slow test must not cost the others
        argv += ["--timeout", "100"]
    # Without CUDA the test module skips itself whole: pytest's "no tests collected" (5).
    return Step("tests", argv, 150, 30, "gpu_tests.json", (0, 5) if dry else (0,))


def steps(dry: bool, work: Path) -> list[Step]:
    py, scripts = sys.executable, REPO / "benchmarks"
    env = [py, str(scripts / "gpu_env.py"), "--json", str(work / "env.json")]
    plan = [Step("env", env, 30, 10, "env.json"), tests_step(dry, work)]
    for name, (script, limit, minimum) in BENCHMARKS.items():
        args = (DRY_SIZES if dry else GPU_SIZES)[name]
        if name == "parallel" and not dry:
            args = [*fashion_mnist_args(), *args]
        argv = [py, str(scripts / script), *args, "--json", str(work / f"{name}.json")]
        plan.append(Step(name, argv, limit, minimum, f"{name}.json"))
    return plan


def child_env(work: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(PYTHONUNBUFFERED="1", WANDB_MODE="disabled",
               CORESET_LAB_GPU_REPORT=str(work / "gpu_tests.json"))  # fmt: skip
    return env


def _stop(proc: subprocess.Popen) -> None:
    """The step and every process it started (DataLoader workers, compile workers, pools)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_step(step: Step, work: Path, limit: float) -> dict:
    """Run one step within `limit` seconds; its status, exit code, seconds and JSON result."""
    log = work / f"{step.name}.log"
    start, cpu = time.monotonic(), _children_cpu()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(step.argv, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                env=child_env(work), start_new_session=True)  # fmt: skip
        try:
            rc = proc.wait(timeout=limit)
            status = "ok" if rc in step.ok_codes else "failed"
        except subprocess.TimeoutExpired:
            _stop(proc)
            rc, status = None, "timeout"
    out = {"name": step.name, "status": status, "rc": rc, "limit_s": round(limit, 1),
           "seconds": round(time.monotonic() - start, 1),
           "cpu_s": round(_children_cpu() - cpu, 1)}  # fmt: skip
    path = work / step.result if step.result else None
    if path is not None and path.exists():
        try:
            out["data"] = json.loads(path.read_text())
        except ValueError as err:
            out["data_error"] = str(err)
    return out


def append_log(total: Path, step: Step, result: dict, work: Path) -> None:
    data = (work / f"{step.name}.log").read_bytes()
    if len(data) > LOG_LIMIT:
        half = LOG_LIMIT // 2
        data = data[:half] + b"\n[... output cut ...]\n" + data[-half:]
    head = f"\n===== {step.name}: {result['status']} in {result['seconds']} s =====\n"
    head += " ".join(step.argv) + "\n"
    with open(total, "ab") as fh:
        fh.write(head.encode() + data)


def tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join("    " + line for line in text[-lines:])


def run_all(dry: bool, budget: float, out: Path, work: Path, only=None) -> dict:
    plan = [s for s in steps(dry, work) if not only or s.name in only]
    return {"mode": "dry-run" if dry else "gpu", "budget_s": budget,
            "steps": run_plan(plan, budget, out, work)}  # fmt: skip


def run_plan(plan: list[Step], budget: float, out: Path, work: Path) -> list[dict]:
    """Run the steps in order within `budget` seconds in all; each step's result."""
    deadline = time.monotonic() + budget
    results = []
    for i, step in enumerate(plan):
        left = deadline - time.monotonic()
        reserve = sum(s.minimum for s in plan[i + 1 :])  # kept for the steps after this one
        limit = min(step.timeout, left - reserve)
        if limit < step.minimum:  # earlier steps come first: give it what is left
            limit = min(step.timeout, left)
        if limit < step.minimum:
            results.append({"name": step.name, "status": "skipped", "reason": "out of budget"})
            print(f"[gpu_check] {step.name}: skipped (out of the time budget)", flush=True)
            continue
        print(f"[gpu_check] {step.name}: running (limit {limit:.0f} s)", flush=True)
        result = run_step(step, work, limit)
        results.append(result)
        append_log(out / "log.txt", step, result, work)
        print(f"[gpu_check] {step.name}: {result['status']} in {result['seconds']} s", flush=True)
        if result["status"] != "ok":
            print(tail(work / f"{step.name}.log"), flush=True)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU (CI)")
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out")
    p.add_argument("--budget", type=float, default=None, help="seconds (470; dry-run 240)")
    p.add_argument("--steps", nargs="+", choices=STEP_NAMES, help="only these (a rerun)")
    args = p.parse_args()
    budget = args.budget or (240.0 if args.dry_run else 470.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "log.txt").write_text("")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        report = run_all(args.dry_run, budget, out, Path(tmp), args.steps)
        if (Path(tmp) / "junit.xml").exists():
            shutil.copy(Path(tmp) / "junit.xml", out / "junit.xml")
    report["total_s"] = round(time.monotonic() - start, 1)
    text = summarize(report, out / "junit.xml")
    (out / "summary.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "summary.md").write_text(text)
    print(text, flush=True)
    return 0 if all(s["status"] == "ok" for s in report["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
