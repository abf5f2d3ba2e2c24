"""Wall time of one CIFAR-10-sized table cell (score + select + evaluate), per trainer recipe.

A cell is one `coreset-lab` run: data, the scoring model (trainer.proxy_epochs epochs), scores,
selection, and the target model (trainer.target_iterations iterations), from an empty store.
The recipes' full trainings (paper: 200 proxy epochs + 40,000 target iterations) take far longer
than a lent GPU's minutes, so each recipe runs the cell twice, short and twice as long, in one
process, after an unmeasured warm-up run of the short cell (without it the first run also pays
CUDA's start and cuDNN's autotuning: on an H200 the longer run came out faster, 0 s per epoch).
Per stage t = fixed + slope * work is fitted through the two runs (the fixed part holds what is
paid once: data, compilation), and the full cell is extrapolated from it:

    full = data + score + select + fixed_proxy + slope_proxy * E + fixed_target + slope_target * I

with E, I the recipe's own proxy epochs and target iterations. Data: CIFAR-10-format files of
random 32x32x3 images (no download), so accuracies mean nothing; times do.

    python benchmarks/bench_table_cell.py                     # 50k images, trainer=paper and fast
    python benchmarks/bench_table_cell.py --toy               # digits, seconds: checks the script
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_common import describe_hardware, hardware_info, make_cifar_sized, write_json
from coreset_lab.run.config import compose_config
from coreset_lab.run.pipeline import run
from coreset_lab.runtime import quiet_third_party

CELL = ["method=ccs", "selector.prune_rate=0.7", "logger=none", "cache=false"]
TOY = ["dataset=digits", "+model.kwargs={width: 8, depth: 2}"]
SCORING, TARGET = "train_scoring_model", "evaluate"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cifar-n", type=int, default=50_000, help="generated CIFAR train images")
    p.add_argument("--toy", action="store_true", help="digits and small_cnn instead")
    p.add_argument("--recipes", nargs="+", default=["paper", "fast"], help="trainer= configs")
    p.add_argument("--proxy-epochs", type=int, nargs=2, default=[1, 2], metavar=("E1", "E2"))
    p.add_argument(
        "--target-iterations", type=int, nargs=2, default=[100, 200], metavar=("I1", "I2")
    )
    p.add_argument("--json", default=None, help="results as JSON, rewritten after every recipe")
    p.add_argument("overrides", nargs="*", help="extra config overrides for every run")
    return p.parse_args()


def data_overrides(args, tmp: Path) -> list[str]:
    if args.toy:
        return list(TOY)
    root = make_cifar_sized(tmp / "cifar", args.cifar_n, min(10_000, args.cifar_n // 5))
    return ["dataset=cifar10", f"dataset.root={root}", "model=cifar_resnet18"]


def one_cell(overrides: list[str], out: Path) -> dict:
    paths = [f"paths.root_dir={out}", f"paths.output_dir={out}/run"]
    cfg, choices = compose_config([*paths, *overrides])
    start = time.perf_counter()
    result = run(cfg, choices)
    return {"wall_s": time.perf_counter() - start, "stages": result["stage_seconds"]}


def full_budget(overrides: list[str]) -> tuple[int, int]:
    """The recipe's own (proxy epochs, target iterations)."""
    cfg, _ = compose_config(overrides)
    return int(cfg.trainer.proxy_epochs), int(cfg.trainer.target_iterations)


def fit(t1: float, t2: float, w1: int, w2: int) -> tuple[float, float]:
    """(fixed, slope) of t = fixed + slope * work through two runs; never a negative part."""
    slope = max(0.0, (t2 - t1) / (w2 - w1))
    return max(0.0, t1 - slope * w1), slope


def measure_recipe(recipe: str, base: list[str], args, tmp: Path, row: dict, save) -> None:
    """Fill `row` (calling save() after each run, so a stopped benchmark keeps what it ran)."""
    overrides = [*base, f"trainer={recipe}", *CELL, *args.overrides]
    epochs, iterations = full_budget(overrides)
    row.update(proxy_epochs=epochs, target_iterations=iterations, runs=[])
    sizes = list(zip(args.proxy_epochs, args.target_iterations, strict=True))
    for n, (e, i) in enumerate([sizes[0], *sizes]):  # the first: warm-up, not kept
        short = [f"trainer.proxy_epochs={e}", f"trainer.target_iterations={i}"]
        cell = one_cell([*overrides, *short], tmp / f"{recipe}-{n}-{e}-{i}")
        print(f"{recipe}: {e} epochs, {i} iterations{' (warm-up)' * (n == 0)}: {cell}", flush=True)
        if n == 0:
            row["warmup_s"] = cell["wall_s"]
            continue
        row["runs"].append(cell)
        save()
    a, b = (r["stages"] for r in row["runs"])
    fixed_p, slope_p = fit(a.get(SCORING, 0), b.get(SCORING, 0), *args.proxy_epochs)
    fixed_t, slope_t = fit(a.get(TARGET, 0), b.get(TARGET, 0), *args.target_iterations)
    rest = sum(v for k, v in b.items() if k not in (SCORING, TARGET))
    scoring, target = fixed_p + slope_p * epochs, fixed_t + slope_t * iterations
    row.update(scoring_fixed_s=fixed_p, scoring_s_per_epoch=slope_p, target_fixed_s=fixed_t)
    row.update(target_s_per_iteration=slope_t, extrapolated_scoring_s=scoring)
    row.update(extrapolated_target_s=target, extrapolated_cell_s=rest + scoring + target)


def main() -> None:
    args = parse_args()
    quiet_third_party()
    rows = []
    with tempfile.TemporaryDirectory(prefix="coreset-lab-cell-") as tmp:
        base = data_overrides(args, Path(tmp))
        workload = f"{' '.join([*base, *CELL, *args.overrides])}; empty store"
        result = {"hardware": hardware_info(), "workload": workload, "rows": rows}
        for recipe in args.recipes:
            rows.append({"recipe": recipe})
            try:
                measure_recipe(recipe, base, args, Path(tmp), rows[-1],
                               lambda: write_json(args.json, result))  # fmt: skip
            except Exception as err:  # noqa: BLE001 - reported, the other recipes go on
                rows[-1]["error"] = f"{type(err).__name__}: {err}"[:2000]
            write_json(args.json, result)
    print(describe_hardware())
    print(f"workload : {workload}")
    for r in rows:
        if "error" in r:
            print(f"trainer={r['recipe']:6s} FAILED: {r['error']}")
            continue
        measured = " / ".join(f"{run['wall_s']:.1f} s" for run in r["runs"])
        full = f"{r['proxy_epochs']} epochs + {r['target_iterations']} iterations"
        print(
            f"trainer={r['recipe']:6s} measured {measured}; scoring model "
            f"{r['scoring_s_per_epoch']:.2f} s/epoch (+{r['scoring_fixed_s']:.1f} s once), target "
            f"{1000 * r['target_s_per_iteration']:.1f} ms/iteration (+{r['target_fixed_s']:.1f} s "
            f"once); full cell ({full}) ~ {r['extrapolated_cell_s'] / 60:.1f} min"
        )

    if any("error" in r for r in rows):
        raise SystemExit(1)  # the numbers above stand; the run did not all work


if __name__ == "__main__":
    main()
