"""Fitting vs UNSEEN scores: distributions and seed-to-seed stability (UNSEEN's Figure 1).

For one scorer and two seeds, compute
  - fitting scores: a model trained on every sample scores every sample (protocol=fitting);
  - UNSEEN scores: K-fold held-out scores (protocol=unseen and its protocol.* options; the
    incremental stages play no part: they do not give every sample a score);
then save histograms of both (PNG), a rank-vs-rank scatter of the two seeds (PNG), the scores
(NPZ) and a JSON with the Pearson correlation of the per-sample score *ranks* between the two
seeds (i.e. Spearman's rho) and summary statistics of every score vector. The UNSEEN paper
reports 0.43 (fitting) vs 0.92 (UNSEEN) on CIFAR-100 [unverified, see the research notes].

Every model is an artifact of the shared store, so the fitting models are the fitting
protocol's proxies and the fold models those of protocol=unseen runs with the same seed.

    python scripts/score_stability.py scorer=margin dataset=digits trainer=debug --out DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from scipy.stats import rankdata

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from coreset_lab.errors import UserError  # noqa: E402
from coreset_lab.protocols.unseen import Unseen, heldout_scores  # noqa: E402
from coreset_lab.scoring import ScoreInputs, Scorer  # noqa: E402
from coreset_lab.services.context import RunContext, open_store  # noqa: E402

log = logging.getLogger("coreset_lab")

KINDS = ("fitting", "unseen")


def rank_pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the ranks of `a` and `b` (average ranks for ties)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"need two score vectors of the same length >= 2, got {a.shape} {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores contain NaN or infinite values")
    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:  # a constant vector has no ranking to agree with
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def score_summary(scores: np.ndarray) -> dict:
    """Range and spread; `iqr_over_range` small = most samples crowd into a narrow band."""
    s = np.asarray(scores, dtype=np.float64)
    q = np.quantile(s, [0.05, 0.25, 0.5, 0.75, 0.95])
    span = float(s.max() - s.min())
    out = {"min": s.min(), "max": s.max(), "mean": s.mean(), "std": s.std()}
    for p, v in zip((5, 25, 50, 75, 95), q, strict=True):
        out[f"q{p:02d}"] = v
    out["iqr_over_range"] = float((q[3] - q[1]) / span) if span > 0 else 0.0
    return {k: round(float(v), 6) for k, v in out.items()}


def fitting_scores(ctx: RunContext, scorer: Scorer, labels: np.ndarray, seed: int) -> np.ndarray:
    """Scores from a model trained on every sample (the fitting protocol's proxy for `seed`)."""
    model = ctx.models.scoring_model(
        labels, record_logits="logits" in scorer.needs, seed=seed, tag=f"fitting-seed{seed}"
    )
    inputs = ScoreInputs(labels=labels, dynamics=model.dynamics, probs=model.probs, seed=seed)
    return np.asarray(scorer(inputs), dtype=np.float64)


def unseen_scores(
    ctx: RunContext, scorer: Scorer, labels: np.ndarray, config: Unseen, seed: int
) -> np.ndarray:
    """K-fold held-out scores (repeats start at `seed`)."""
    return heldout_scores(ctx, scorer, labels, config, first_seed=seed).scores


@dataclass
class StabilityReport:
    seeds: tuple[int, int]
    scores: dict[str, list[np.ndarray]]  # kind -> [scores of seed a, scores of seed b]
    correlation: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            kind: {
                "rank_pearson": round(self.correlation[kind], 6),
                "per_seed": {
                    str(s): score_summary(x)
                    for s, x in zip(self.seeds, self.scores[kind], strict=True)
                },
            }
            for kind in self.scores
        }


def score_stability(
    ctx: RunContext,
    scorer: Scorer,
    labels: np.ndarray,
    config: Unseen,
    seeds: tuple[int, int],
) -> StabilityReport:
    if not scorer.needs:
        raise UserError(f"scorer {scorer.name!r} uses no model: there is nothing to compare")
    if len(seeds) != 2 or seeds[0] == seeds[1]:
        raise UserError(f"--seeds needs two different seeds, got {list(seeds)}")
    labels = np.asarray(labels, dtype=np.int64)
    scores = {"fitting": [], "unseen": []}
    for seed in seeds:
        with ctx.stage("fitting"):
            scores["fitting"].append(fitting_scores(ctx, scorer, labels, seed))
        with ctx.stage("unseen"):
            scores["unseen"].append(unseen_scores(ctx, scorer, labels, config, seed))
    report = StabilityReport(tuple(seeds), scores)
    report.correlation = {k: rank_pearson(*v) for k, v in scores.items()}
    return report


def plot_histograms(path: Path, report: StabilityReport, title: str) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, kind in zip(axes, KINDS, strict=True):
        both = np.concatenate(report.scores[kind])
        bins = np.histogram_bin_edges(both, bins=60)
        for i, (seed, s) in enumerate(zip(report.seeds, report.scores[kind], strict=True)):
            ax.hist(s, bins=bins, alpha=0.55, color=f"C{i}", label=f"seed {seed}")
        rho = report.correlation[kind]
        ax.set(title=f"{kind}: rank corr. across seeds {rho:.2f}", xlabel="score (higher = harder)")
        ax.set_ylabel("samples")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_rank_scatter(path: Path, report: StabilityReport, title: str) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    a, b = report.seeds
    for ax, kind in zip(axes, KINDS, strict=True):
        ra, rb = (rankdata(s) / len(s) for s in report.scores[kind])
        ax.scatter(ra, rb, s=2, alpha=0.4)
        ax.set(
            title=f"{kind}: {report.correlation[kind]:.2f}",
            xlabel=f"rank, seed {a}",
            ylabel=f"rank, seed {b}",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_stability(out_dir: Path, report: StabilityReport, meta: dict) -> dict[str, Path]:
    """stability.json, stability_hist.png, stability_ranks.png, stability_scores.npz."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{meta.get('scorer')} on {meta.get('dataset')}"
    paths = {
        "json": out_dir / "stability.json",
        "hist": plot_histograms(out_dir / "stability_hist.png", report, title),
        "ranks": plot_rank_scatter(out_dir / "stability_ranks.png", report, title),
        "scores": out_dir / "stability_scores.npz",
    }
    arrays = {
        f"{k}_seed{s}": x
        for k in report.scores
        for s, x in zip(report.seeds, report.scores[k], strict=True)
    }
    with open(paths["scores"], "wb") as fh:
        np.savez(fh, **arrays)
    body = {**meta, "seeds": list(report.seeds), **report.as_dict()}
    paths["json"].write_text(json.dumps(body, indent=2))
    return paths


# --- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="score_stability.py",
        description=(
            "Fitting vs UNSEEN (K-fold held-out) scores of one scorer for two seeds: histograms "
            "and the seed-to-seed Pearson correlation of per-sample score ranks (UNSEEN, Fig. 1)."
        ),
        epilog=(
            "Overrides are those of coreset-lab (scorer=..., dataset=..., trainer=..., "
            "protocol.folds=..., protocol.mode=..., seed=...). Example: python "
            "scripts/score_stability.py scorer=margin dataset=digits trainer=debug --out DIR"
        ),
    )
    p.add_argument("overrides", nargs="*", help="Hydra overrides of the app config")
    p.add_argument("--out", required=True, type=Path, help="directory for the PNG/JSON/NPZ")
    p.add_argument(
        "--seeds",
        nargs=2,
        type=int,
        metavar=("A", "B"),
        help="the two seeds to compare (default: the config's seed and seed + 1)",
    )
    return p


def compose_app_config(overrides: list[str], out_dir: Path):
    """The app config as `coreset-lab` would compose it (protocol=unseen and logger=none unless
    overridden)."""
    from coreset_lab.run.config import compose_config

    overrides = list(overrides)
    given = {o.split("=")[0].lstrip("+~") for o in overrides}
    # UNSEEN's options come with protocol=unseen; training logs would clutter --out.
    overrides[:0] = [
        f"{k}={v}" for k, v in (("protocol", "unseen"), ("logger", "none")) if k not in given
    ]
    overrides.append(f"paths.output_dir={Path(out_dir).resolve()}")
    return compose_config(overrides, job_name="score_stability")


def run_stability(cfg, choices: dict, out_dir: Path, seeds: tuple[int, int] | None) -> dict:
    from coreset_lab.data import build_dataset
    from coreset_lab.registry import instantiate as build

    scorer = build(cfg.scorer)
    config = build(cfg.protocol)
    if not isinstance(config, Unseen):
        raise UserError(f"score_stability compares fitting with protocol=unseen, not {config.name}")
    seeds = tuple(seeds) if seeds else (int(cfg.seed), int(cfg.seed) + 1)
    store = open_store(cfg, started=time.time())
    data = build_dataset(**cfg.dataset)
    ctx = RunContext.from_config(cfg, data, store, Path(out_dir))
    report = score_stability(ctx, scorer, data.train_targets, config, seeds)
    meta = {
        "scorer": choices.get("scorer"),
        "dataset": cfg.dataset.name,
        "model": cfg.model.arch,
        "trainer": choices.get("trainer"),
        "n_train": len(data.train),
        "unseen_config": asdict(config),
        "cost": ctx.ledger.as_dict(),
        "stage_seconds": {k: round(v, 3) for k, v in ctx.ledger.stage_seconds.items()},
        "artifacts": {"built": store.built, "reused": store.reused},
    }
    paths = write_stability(out_dir, report, meta)
    log.info(
        "rank correlation across seeds %s: fitting %.3f, unseen %.3f -> %s",
        list(seeds),
        report.correlation["fitting"],
        report.correlation["unseen"],
        paths["json"],
    )
    return json.loads(paths["json"].read_text())


def main(argv: list[str] | None = None) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from coreset_lab.runtime import quiet_third_party

    args = _parser().parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    quiet_third_party()
    try:
        cfg, choices = compose_app_config(args.overrides, args.out)
        result = run_stability(cfg, choices, args.out, args.seeds)
    except (UserError, HydraException, OmegaConfBaseException) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"score_stability: error: {msg}", file=sys.stderr)
        return 2
    fit, uns = result["fitting"]["rank_pearson"], result["unseen"]["rank_pearson"]
    print(f"rank correlation across seeds: fitting {fit:.3f}, unseen {uns:.3f} ({args.out})")
    return 0
