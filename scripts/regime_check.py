"""Is this a regime where pruning methods can differ? The three criteria of a paper-shaped table.

1. scoring models memorise: a proxy trained on all samples reaches >= 99% accuracy on its own
   training labels (eval mode, un-augmented inputs);
2. target models converge: doubling the target budget changes full-data accuracy by < 0.3 points
   (mean over seeds);
3. pruning costs something: random at p = 0.9 is >= 3 points below full data.

Every number comes from the runner (`coreset_lab.run.pipeline.run`) and the shared store
(paths.store_dir), so the table runs that follow reuse these models. `--jobs` runs that many
runs at once, each with its share of the cores. Prints each criterion, its measurement and
PASS/FAIL, writes regime.json, and exits 1 if a criterion fails.

    python scripts/regime_check.py experiment=fmnist_claims_ccs --seeds 0 1 2 --jobs 2 \\
        --out outputs/claims/regime
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from runs import run_many

from coreset_lab.data import build_dataset
from coreset_lab.run.config import compose_config
from coreset_lab.runtime import quiet_third_party

MEMORISED, CONVERGED, PRUNING_COSTS = 0.99, 0.003, 0.03


def proxy_train_accuracy(result: dict, store: Path, labels: np.ndarray) -> float:
    """Accuracy of the run's scoring model on its own training labels (from the stored probs)."""
    [key] = [a for a in result["artifacts"]["built"] + result["artifacts"]["reused"]
             if a.startswith("scoring_model/")]  # fmt: skip
    probs = np.load(store / key / "probs.npy")
    return float((probs.argmax(1) == labels).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("overrides", nargs="*", help="coreset-lab overrides (an experiment, a recipe)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=Path("outputs/regime_check"))
    p.add_argument("--jobs", type=int, default=1, help="runs at once (each: cores / jobs threads)")
    args = p.parse_args()
    quiet_third_party()
    out = args.out.resolve()
    ov = [o for o in args.overrides if not o.startswith("hydra.")]
    base_cfg, _ = compose_config(ov)
    store = Path(base_cfg.paths.store_dir)
    iterations = int(base_cfg.trainer.target_iterations)
    labels = build_dataset(**base_cfg.dataset).train_targets

    kinds = {  # the long ones first, so that the workers finish together
        "full2x": ["method=full", f"trainer.target_iterations={2 * iterations}"],
        "full": ["method=full"],
        "random": ["method=random", "selector.prune_rate=0.9"],
        "proxy": ["method=el2n", "selector.prune_rate=0.9", "evaluate=false"],
    }
    runs = {(kind, seed): ([*ov, f"seed={seed}", *extra], f"{kind}-{seed}")
            for seed in args.seeds for kind, extra in kinds.items()}  # fmt: skip
    done = run_many(runs, out, args.jobs)
    memorised = [proxy_train_accuracy(done["proxy", s], store, labels) for s in args.seeds]
    full, full2, rand = ([done[k, s]["test_accuracy"] for s in args.seeds]
                         for k in ("full", "full2x", "random"))  # fmt: skip
    for i, seed in enumerate(args.seeds):
        print(f"seed {seed}: proxy train acc {memorised[i]:.4f}, full {full[i]:.4f}, "
              f"full 2x {full2[i]:.4f}, random@0.9 {rand[i]:.4f}", flush=True)  # fmt: skip

    mean = statistics.mean
    criteria = [
        ("scoring models memorise (min proxy train accuracy)", min(memorised),
         min(memorised) >= MEMORISED, f">= {MEMORISED:.2f}"),
        ("targets converge (|full 2x - full|, mean)", abs(mean(full2) - mean(full)),
         abs(mean(full2) - mean(full)) < CONVERGED, f"< {CONVERGED:.3f}"),
        ("pruning costs (full - random@0.9, mean)", mean(full) - mean(rand),
         mean(full) - mean(rand) >= PRUNING_COSTS, f">= {PRUNING_COSTS:.2f}"),
    ]  # fmt: skip
    report = {
        "overrides": ov,
        "seeds": args.seeds,
        "target_iterations": iterations,
        "proxy_train_accuracy": memorised,
        "full": full,
        "full_2x": full2,
        "random_0.9": rand,
        "criteria": [
            {"criterion": c, "value": round(v, 4), "needed": n, "pass": ok}
            for c, v, ok, n in criteria
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "regime.json").write_text(json.dumps(report, indent=2))
    for c, v, ok, needed in criteria:
        print(f"{'PASS' if ok else 'FAIL'}  {c}: {v:.4f} (needed {needed})")
    sys.exit(0 if all(ok for *_, ok, _ in criteria) else 1)


if __name__ == "__main__":
    main()
