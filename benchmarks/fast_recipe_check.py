"""May the fast scoring recipe stand in for the reference one? Scores and coresets, compared.

Two arms train the scoring (proxy) models on the same data, labels and architecture:

* reference : the trainer's own recipe for `--ref-epochs` epochs;
* fast-E    : trainer/scoring=fast (batch 512, linearly scaled lr, 10% warm-up) for E epochs,
              one arm per value of `--fast-epochs`.

For every seed and scorer (AUM, forgetting, EL2N over the first third of training) it reports
the Spearman rank correlation between the arms, beside the correlation between two seeds of the
reference arm: if fast vs reference is as close as reference vs reference, the fast scores are
as good a stand-in as a rerun. Then it trains target models on the coresets each arm selects
(`--methods`, e.g. CCS over AUM) at `--rates` and compares their final test accuracy. The whole
comparison goes through the runner (`coreset_lab.run.pipeline.run`) and its artifact store.

    python benchmarks/fast_recipe_check.py            # Fashion-MNIST, 10k subset, CPU (~40 min)
    python benchmarks/fast_recipe_check.py trainer=paper dataset=cifar10 dataset.root=/data \\
        model=cifar_resnet18 --ref-epochs 200 --fast-epochs 40 --subset 0    # on a GPU
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from scipy.stats import spearmanr

from bench_common import describe_hardware
from coreset_lab.data import build_dataset
from coreset_lab.run.config import compose_config
from coreset_lab.run.pipeline import run
from coreset_lab.runtime import quiet_third_party
from coreset_lab.scoring import ScoreInputs
from coreset_lab.services.context import RunContext
from coreset_lab.store.artifacts import ArtifactStore

CPU_DEFAULTS = [
    "dataset=fashion_mnist",
    "trainer=fmnist_cpu",
    "model=small_cnn",
    "+model.kwargs={width: 16, depth: 3}",
]


def compose_cfg(overrides: list[str], out: Path):
    """The app config for a run whose directories are under `out`."""
    paths = [f"paths.root_dir={out}", f"paths.output_dir={out}/run", "logger=none"]
    return compose_config([*paths, *overrides])


def arm_overrides(arm: str, args) -> list[str]:
    """'reference', or 'fast-<E>': trainer/scoring=fast for E epochs."""
    if arm.startswith("fast-"):
        return ["trainer/scoring=fast", f"trainer.proxy_epochs={arm.split('-')[1]}"]
    return [f"trainer.proxy_epochs={args.ref_epochs}"]


def scores_of(arm: str, seed: int, args, base: list[str], out: Path) -> tuple[dict, float]:
    cfg, _ = compose_cfg([*base, *arm_overrides(arm, args), f"seed={seed}"], out)
    data = build_dataset(**cfg.dataset)
    ctx = RunContext(cfg, data, ArtifactStore(out / "store"), out / "run")
    model = ctx.models.scoring_model(data.train_targets)
    epochs = ctx.proxy_epochs
    scorers = {
        "aum": {"_target_": "coreset_lab.scoring.AUM"},
        "forgetting": {"_target_": "coreset_lab.scoring.Forgetting"},
        "el2n": {"_target_": "coreset_lab.scoring.EL2N", "epochs": max(1, epochs // 3)},
    }
    inputs = ScoreInputs(data.train_targets, dynamics=model.dynamics, probs=model.probs, seed=seed)
    scores = {k: np.asarray(instantiate(v)(inputs)) for k, v in scorers.items()}
    return scores, model.info["seconds"]


def rank_table(scores: dict, seeds: list[int]) -> list[str]:
    """Per scorer: each fast arm against the reference (same seed), and every arm against
    itself across seeds (the noise floor a stand-in has to reach)."""
    arms = list(scores)
    fast = [a for a in arms if a != "reference"]
    head = [f"{a} vs reference" for a in fast] + [f"{a} vs {a} (seeds)" for a in arms]
    lines = ["| scorer | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    pairs = list(itertools.combinations(seeds, 2))
    for scorer in scores["reference"][seeds[0]]:

        def rho(a, b, key=scorer):
            return spearmanr(a[key], b[key]).statistic

        ref = scores["reference"]
        cells = [[rho(scores[a][s], ref[s]) for s in seeds] for a in fast]
        cells += [[rho(scores[a][x], scores[a][y]) for x, y in pairs] for a in arms]
        lines.append(f"| {scorer} | " + " | ".join(_mean_std(c) for c in cells) + " |")
    return lines


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    values = [v * scale for v in values]
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f} ({len(values)})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("overrides", nargs="*", help="config overrides for both arms (key=value)")
    p.add_argument("--out", default="outputs/tables/fast_recipe_check", help="report directory")
    p.add_argument(
        "--work", default="outputs/fast_recipe_check", help="artifact store and run directories"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rates", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    p.add_argument("--methods", nargs="+", default=["ccs"])
    p.add_argument("--ref-epochs", type=int, default=30)
    p.add_argument("--fast-epochs", type=int, nargs="+", default=[6, 15])
    p.add_argument("--subset", type=int, default=10000, help="train subset (0: all)")
    args = p.parse_args()
    quiet_third_party()
    report_dir = Path(args.out).absolute()
    report_dir.mkdir(parents=True, exist_ok=True)
    out = Path(args.work).absolute()
    out.mkdir(parents=True, exist_ok=True)
    base = [*(CPU_DEFAULTS if not args.overrides else []), *args.overrides]
    if args.subset:
        base.append(f"dataset.train_subset={args.subset}")

    arms = ["reference", *(f"fast-{e}" for e in args.fast_epochs)]
    scores: dict = {arm: {} for arm in arms}
    seconds: dict = {arm: [] for arm in arms}
    for arm, seed in itertools.product(arms, args.seeds):
        scores[arm][seed], s = scores_of(arm, seed, args, base, out)
        seconds[arm].append(s)
    accuracy: dict = {}
    for arm, method, rate, seed in itertools.product(arms, args.methods, args.rates, args.seeds):
        overrides = [*base, *arm_overrides(arm, args), f"method={method}",
                     f"selector.prune_rate={rate}", f"seed={seed}",
                     f"paths.store_dir={out / 'store'}"]  # fmt: skip
        cfg, choices = compose_cfg(overrides, out / "runs" / f"{arm}-{method}-{rate}-{seed}")
        result = run(cfg, choices)
        accuracy.setdefault((arm, method, rate), []).append(result["test_accuracy"])

    lines = [
        "# Fast scoring recipe vs the reference recipe",
        "",
        "```",
        describe_hardware(),
        f"overrides: {' '.join(base)}",
        f"reference: the trainer's recipe, {args.ref_epochs} epochs; fast-E: trainer/scoring=fast "
        f"for E epochs; seeds {args.seeds}",
        "seconds per scoring model: "
        + ", ".join(f"{a} {_mean_std(seconds[a], digits=1)}" for a in arms),
        "```",
        "",
        "Spearman rank correlation of per-sample scores (mean ± std (pairs)):",
        "",
        *rank_table(scores, args.seeds),
        "",
        "Final test accuracy (%) of target models trained on each arm's coreset:",
        "",
        "| method | prune rate | " + " | ".join(arms) + " |",
        "|---|---|" + "---|" * len(arms),
    ]
    for method, rate in itertools.product(args.methods, args.rates):
        cells = [_mean_std(accuracy[(a, method, rate)], 100, 2) for a in arms]
        lines.append(f"| {method} | {rate} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (report_dir / "report.md").write_text(text)
    (report_dir / "accuracy.json").write_text(
        json.dumps({"|".join(map(str, k)): v for k, v in accuracy.items()}, indent=1)
    )
    print(text)


if __name__ == "__main__":
    main()
