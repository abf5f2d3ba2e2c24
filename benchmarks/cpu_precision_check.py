"""May bf16 autocast (+ channels_last) stand in for fp32 on the CPU? Speed, and faithful scores.

Trains the scoring model of `method=aum` (selection only, evaluate=false) for each seed in fp32
and in each candidate setting, one after another in this process (ratios from one run), through
the runner and a private store. The candidate is faithful when its AUM ranking agrees with the
fp32 ranking of the same seed at least as well as two fp32 seeds agree with each other (Spearman;
the fp32 seed-to-seed floor). Prints a table, writes cpu_precision.json, exits 1 if a candidate
is not faithful.

    OMP_NUM_THREADS=1 python benchmarks/cpu_precision_check.py experiment=fmnist_claims_ccs
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from coreset_lab.run.config import compose_config
from coreset_lab.run.pipeline import run
from coreset_lab.runtime import quiet_third_party

SETTINGS = {
    "fp32": ["trainer.precision=32-true", "trainer.channels_last=false"],
    "bf16": ["trainer.precision=bf16-mixed", "trainer.channels_last=false"],
    "bf16+channels_last": ["trainer.precision=bf16-mixed", "trainer.channels_last=true"],
}


def score(overrides: list[str], out: Path, name: str) -> tuple[np.ndarray, float]:
    """AUM scores (higher = harder) and the seconds the scoring model trained."""
    paths = [f"paths.root_dir={out}", f"paths.output_dir={out}/{name}", "logger=none"]
    # cache=false: channels_last is speed-only (not in the store key), so a stored model would
    # be reused across settings and time nothing
    run_ov = [*overrides, "method=aum", "evaluate=false", "cache=false", *paths]
    cfg, choices = compose_config(run_ov)
    result = run(cfg, choices)
    return np.load(out / name / "scores.npy"), result["stage_seconds"]["train_scoring_model"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("overrides", nargs="*", help="coreset-lab overrides (an experiment, a recipe)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--out", type=Path, default=Path("outputs/cpu_precision_check"))
    args = p.parse_args()
    if len(args.seeds) < 2:
        p.error("--seeds needs at least two seeds (the fp32 seed-to-seed floor)")
    quiet_third_party()
    out = args.out.resolve()
    ov = [o for o in args.overrides if not o.startswith("hydra.")]
    scores: dict[str, dict[int, np.ndarray]] = {name: {} for name in SETTINGS}
    seconds: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for seed in args.seeds:  # settings interleaved per seed: background load hits all alike
        for name, setting in SETTINGS.items():
            s, t = score([*ov, *setting, f"seed={seed}"], out, f"{name}-{seed}")
            scores[name][seed], _ = s, seconds[name].append(t)
            print(f"{name} seed {seed}: scoring model {t:.1f} s", flush=True)

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        return float(spearmanr(a, b).statistic)

    pairs = list(itertools.combinations(args.seeds, 2))
    floor = min(rho(scores["fp32"][a], scores["fp32"][b]) for a, b in pairs)
    fp32_time = statistics.mean(seconds["fp32"])
    report = {"overrides": ov, "seeds": args.seeds, "fp32_seed_to_seed_min": floor, "settings": {}}
    print(f"\nfp32 seed-to-seed Spearman (min over pairs): {floor:.4f}")
    faithful_all = True
    for name in SETTINGS:
        if name == "fp32":
            continue
        agree = min(rho(scores[name][s], scores["fp32"][s]) for s in args.seeds)
        speedup = fp32_time / statistics.mean(seconds[name])
        faithful = agree >= floor
        faithful_all &= faithful
        report["settings"][name] = {
            "speedup_vs_fp32": round(speedup, 3),
            "spearman_vs_fp32_same_seed_min": round(agree, 4),
            "faithful": faithful,
            "seconds": seconds[name],
        }
        print(f"{name}: {speedup:.2f}x fp32, Spearman with fp32 (same seed, min) {agree:.4f} "
              f"-> {'faithful' if faithful else 'NOT faithful'}")  # fmt: skip
    report["settings"]["fp32"] = {"seconds": seconds["fp32"]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu_precision.json").write_text(json.dumps(report, indent=2))
    sys.exit(0 if faithful_all else 1)


if __name__ == "__main__":
    main()
