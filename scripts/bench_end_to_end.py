"""End-to-end wall time of ELFS and UNSEEN (K = 5) runs, engine against engine.

Each configuration is one whole `coreset-lab` run (data, embeddings, clustering, scoring models,
selection, target model) from an empty store (`cache=false`), timed per stage. Configurations:

* ELFS  : protocol=elfs (PCA encoder, faiss k-means, proxy on pseudo-labels, AUM, double-end)
* UNSEEN: protocol=unseen, K=5 folds, 2 stages, scorer=aum (held-out dynamics recorded)

each on the Lightning engine, the fast engine, and (UNSEEN) the fast engine with the fold models
trained as one vmapped group; and with trainer/scoring=fast for a fifth of the epochs (the
fast recipe's trade, checked in scripts/fast_recipe_check.py).

    python scripts/bench_end_to_end.py                       # Fashion-MNIST 10k subset, CPU
    python scripts/bench_end_to_end.py --cifar-sized        # 50k random 32x32x3 CIFAR-format
        files (no download): the size of CIFAR-10, for a GPU; cifar_resnet18, paper recipe
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_common import describe_hardware
from coreset_lab.cli import compose_config, quiet_third_party
from coreset_lab.pipeline import run

CPU = ["dataset=fashion_mnist", "dataset.train_subset=10000", "trainer=fmnist_cpu",
       "+model.kwargs={width: 16, depth: 3}", "trainer.proxy_epochs=10"]  # fmt: skip
ELFS = ["protocol=elfs", "scorer=aum", "selector=double_end", "selector.beta=0.1",
        "elfs.beta_search=false", "encoder=pca"]  # fmt: skip
UNSEEN = ["protocol=unseen", "scorer=aum", "unseen.folds=5", "unseen.stages=2"]
CONFIGS = {
    "ELFS   lightning": [*ELFS, "trainer.engine=lightning"],
    "ELFS   fast": [*ELFS, "trainer.engine=fast"],
    "ELFS   fast, trainer/scoring=fast": [
        *ELFS,
        "trainer.engine=fast",
        "trainer/scoring=fast",
        "trainer.proxy_epochs=2",
    ],  # fmt: skip
    "UNSEEN lightning": [*UNSEEN, "trainer.engine=lightning"],
    "UNSEEN fast": [*UNSEEN, "trainer.engine=fast"],
    "UNSEEN fast, batched folds": [*UNSEEN, "trainer.engine=fast", "unseen.batched=true"],
    "UNSEEN fast, trainer/scoring=fast": [
        *UNSEEN,
        "trainer.engine=fast",
        "trainer/scoring=fast",
        "trainer.proxy_epochs=2",
    ],  # fmt: skip
}


def cifar_sized(root: Path) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.datagen import make_cifar10

    make_cifar10(root, n_train=50_000, n_test=10_000)
    return ["dataset=cifar10", f"dataset.root={root}", "model=cifar_resnet18", "trainer=paper",
            "trainer.proxy_epochs=20", "trainer.target_iterations=4000"]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cifar-sized", action="store_true")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--only", nargs="*", help="names of configurations to run (substring match)")
    p.add_argument("overrides", nargs="*", help="extra config overrides for every run")
    args = p.parse_args()
    quiet_third_party()
    with tempfile.TemporaryDirectory(prefix="coreset-lab-bench-") as tmp:
        base = cifar_sized(Path(tmp) / "cifar") if args.cifar_sized else CPU
        rows = []
        for name, overrides in CONFIGS.items():
            if args.only and not any(o in name for o in args.only):
                continue
            walls, stages = [], {}
            for r in range(args.runs):
                out = Path(tmp) / f"{re.sub('[^A-Za-z0-9]+', '_', name)}-{r}"
                paths = [f"paths.root_dir={out}", f"paths.output_dir={out}/run", "logger=none"]
                run_overrides = [*paths, *base, *overrides, "cache=false", *args.overrides]
                cfg, choices = compose_config(run_overrides)
                start = time.perf_counter()
                result = run(cfg, choices)
                walls.append(time.perf_counter() - start)
                stages = result["stage_seconds"]
            rows.append((name, walls, stages, result["test_accuracy"]))
            print(f"done: {name} {walls} {stages}", flush=True)
    print(describe_hardware())
    print(f"workload : {' '.join([*base, *args.overrides])}; {args.runs} run(s) each, empty store")
    reference = {}
    for name, walls, stages, acc in rows:
        med = statistics.median(walls)
        family = name.split()[0]
        reference.setdefault(family, med)
        parts = ", ".join(f"{k} {v:.0f}" for k, v in stages.items() if v >= 0.5)
        print(
            f"{name:28s} {med:7.1f} s  x{reference[family] / med:5.2f}  "
            f"acc {100 * acc:5.2f}%  [{parts}]"
        )


if __name__ == "__main__":
    main()
