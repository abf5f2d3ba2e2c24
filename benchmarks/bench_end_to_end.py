"""End-to-end wall time of ELFS and UNSEEN (K = 5) runs, engine against engine.

Each configuration is one whole `coreset-lab` run (data, embeddings, clustering, scoring models,
selection, target model) from an empty store (`cache=false`), timed per stage. Configurations:

* ELFS  : protocol=elfs (PCA encoder, faiss k-means, proxy on pseudo-labels, AUM, double-end)
* UNSEEN: protocol=unseen, K=5 folds, 2 stages, scorer=aum (held-out dynamics recorded)

each on the Lightning engine, the fast engine, and (UNSEEN) the fast engine with the fold models
trained as one vmapped group; and with trainer/scoring=fast for a fifth of the epochs (the
fast recipe's trade, checked in benchmarks/fast_recipe_check.py).

    python benchmarks/bench_end_to_end.py                       # Fashion-MNIST 10k subset, CPU
    python benchmarks/bench_end_to_end.py --cifar-sized        # 50k random 32x32x3 CIFAR-format
        files (no download): the size of CIFAR-10, for a GPU; cifar_resnet18, paper recipe
    python benchmarks/bench_end_to_end.py --cifar-sized --proxy-epochs 4 --target-iterations 500 \
        --only "ELFS   fast" "UNSEEN fast" --json e2e.json   # shorter trainings, no Lightning
    python benchmarks/bench_end_to_end.py --toy                 # digits, seconds: checks the script

The fast-recipe rows train their scoring models for --fast-proxy-epochs (2) epochs.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from bench_common import describe_hardware, hardware_info, make_cifar_sized, write_json
from coreset_lab.run.config import compose_config
from coreset_lab.run.pipeline import run
from coreset_lab.runtime import quiet_third_party

CPU = ["dataset=fashion_mnist", "dataset.train_subset=10000", "trainer=fmnist_cpu",
       "+model.kwargs={width: 16, depth: 3}", "trainer.proxy_epochs=10"]  # fmt: skip
ELFS = ["protocol=elfs", "scorer=aum", "selector=double_end", "selector.beta=0.1",
        "protocol.beta_search=false", "encoder=pca"]  # fmt: skip
UNSEEN = ["protocol=unseen", "scorer=aum", "protocol.folds=5", "protocol.stages=2"]
TOY = ["dataset=digits", "+model.kwargs={width: 8, depth: 2}", "trainer.proxy_epochs=2",
       "trainer.target_iterations=20", "encoder.dim=16"]  # fmt: skip


def configs(fast_epochs: int) -> dict[str, list[str]]:
    fast = ["trainer.engine=fast", "trainer/scoring=fast", f"trainer.proxy_epochs={fast_epochs}"]
    return {
        "ELFS   lightning": [*ELFS, "trainer.engine=lightning"],
        "ELFS   fast": [*ELFS, "trainer.engine=fast"],
        "ELFS   fast, trainer/scoring=fast": [*ELFS, *fast],
        "UNSEEN lightning": [*UNSEEN, "trainer.engine=lightning"],
        "UNSEEN fast": [*UNSEEN, "trainer.engine=fast"],
        "UNSEEN fast, batched folds": [*UNSEEN, "trainer.engine=fast", "protocol.batched=true"],
        "UNSEEN fast, trainer/scoring=fast": [*UNSEEN, *fast],
    }


def cifar_sized(root: Path, n: int) -> list[str]:
    make_cifar_sized(root, n_train=n, n_test=min(10_000, max(100, n // 5)))
    return ["dataset=cifar10", f"dataset.root={root}", "model=cifar_resnet18", "trainer=paper",
            "trainer.proxy_epochs=20", "trainer.target_iterations=4000"]  # fmt: skip


def base_overrides(args, tmp: Path) -> list[str]:
    if args.toy:
        base = list(TOY)
    elif args.cifar_sized:
        base = cifar_sized(tmp / "cifar", args.cifar_n)
    else:
        base = list(CPU)
    if args.proxy_epochs:
        base.append(f"trainer.proxy_epochs={args.proxy_epochs}")
    if args.target_iterations:
        base.append(f"trainer.target_iterations={args.target_iterations}")
    return base


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cifar-sized", action="store_true", help="generated CIFAR-10-format data")
    p.add_argument("--cifar-n", type=int, default=50_000, help="its train images (50000)")
    p.add_argument("--toy", action="store_true", help="digits, tiny trainings (a script check)")
    p.add_argument("--proxy-epochs", type=int, default=None, help="scoring-model epochs")
    p.add_argument("--fast-proxy-epochs", type=int, default=2, help="the same, fast-recipe rows")
    p.add_argument("--target-iterations", type=int, default=None)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--only", nargs="*", help="names of configurations to run (substring match)")
    p.add_argument("--json", default=None, help="results as JSON, rewritten after every row")
    p.add_argument("overrides", nargs="*", help="extra config overrides for every run")
    return p.parse_args()


def run_config(name: str, overrides: list[str], tmp: Path, runs: int) -> dict:
    walls, stages, result = [], {}, {}
    for r in range(runs):
        out = tmp / f"{re.sub('[^A-Za-z0-9]+', '_', name)}-{r}"
        paths = [f"paths.root_dir={out}", f"paths.output_dir={out}/run", "logger=none"]
        cfg, choices = compose_config([*paths, *overrides, "cache=false"])
        start = time.perf_counter()
        result = run(cfg, choices)
        walls.append(time.perf_counter() - start)
        stages = result["stage_seconds"]
    return {"name": name, "walls": walls, "median_s": statistics.median(walls),
            "stage_seconds": stages, "test_accuracy": result["test_accuracy"]}  # fmt: skip


def main() -> None:
    args = parse_args()
    quiet_third_party()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="coreset-lab-bench-") as tmp:
        base = base_overrides(args, Path(tmp))
        workload = f"{' '.join([*base, *args.overrides])}; {args.runs} run(s) each, empty store"
        for name, overrides in configs(args.fast_proxy_epochs).items():
            if args.only and not any(o in name for o in args.only):
                continue
            try:
                row = run_config(name, [*base, *overrides, *args.overrides], Path(tmp), args.runs)
            except Exception as err:  # noqa: BLE001 - reported, the other configurations go on
                row = {"name": name, "error": f"{type(err).__name__}: {err}"[:2000]}
            rows.append(row)
            print(f"done: {name} {row.get('walls', row.get('error'))}", flush=True)
            write_json(args.json, {"hardware": hardware_info(), "workload": workload, "rows": rows})
    print(describe_hardware())
    print(f"workload : {workload}")
    reference = {}
    for row in rows:
        if "error" in row:
            print(f"{row['name']:33s} FAILED: {row['error']}")
            continue
        family = row["name"].split()[0]
        reference.setdefault(family, row["median_s"])
        parts = ", ".join(f"{k} {v:.0f}" for k, v in row["stage_seconds"].items() if v >= 0.5)
        speedup = reference[family] / row["median_s"]
        print(
            f"{row['name']:33s} {row['median_s']:7.1f} s  x{speedup:5.2f}"
            f"  acc {100 * row['test_accuracy']:5.2f}%  [{parts}]"
        )

    if any("error" in row for row in rows):
        raise SystemExit(1)  # the numbers above stand; the run did not all work


if __name__ == "__main__":
    main()
