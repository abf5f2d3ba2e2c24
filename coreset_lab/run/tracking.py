"""Experiment tracking: one W&B run per job when `logger=wandb`, nothing otherwise.

Lightning's WandbLogger reuses an active run, so every training of the job (proxy, folds,
target) logs into this one run under its own prefix; the job's config, final numbers, coreset,
scores and plots are added here. The run is always finished, so the next job of a multirun gets a
fresh one (wandb/wandb#1314).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from coreset_lab.errors import UserError


def wandb_config(cfg: DictConfig) -> DictConfig | None:
    entries = cfg.get("logger") or {}
    return entries.get("wandb")


@contextmanager
def tracking(cfg: DictConfig, out_dir: Path, job_type: str):
    wcfg = wandb_config(cfg)
    if wcfg is None or os.environ.get("WANDB_MODE") == "disabled":
        yield None
        return
    import wandb

    run = _init(
        wandb,
        project=wcfg.get("project"),
        entity=wcfg.get("entity"),
        group=wcfg.get("group"),
        job_type=job_type,
        tags=list(wcfg.get("tags") or []),
        name=f"{job_type}-p{cfg.selector.get('prune_rate')}-s{cfg.seed}",
        dir=str(out_dir),
        config=OmegaConf.to_container(cfg, resolve=True),
        mode="offline" if wcfg.get("offline") else None,
        reinit=True,
    )
    try:
        yield run
    finally:
        run.finish()


def _init(wandb, **kwargs):
    """wandb.init, with its refusals (no login, a bad entity or project) as one line instead of
    wandb's traceback."""
    try:
        return wandb.init(**kwargs)
    except (wandb.errors.UsageError, wandb.errors.CommError, wandb.errors.AuthenticationError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(
            f"logger=wandb: W&B refused to start a run ({reason}); log in with `wandb login` "
            f"(or set WANDB_API_KEY), run offline with WANDB_MODE=offline, or use logger=csv"
        ) from None


def log_run(run, result: dict, out_dir: Path) -> None:
    """Final numbers into the summary; coreset and scores as an artifact; plots as images."""
    if run is None:
        return
    import wandb

    summary = {k: v for k, v in result.items() if isinstance(v, int | float | str)}
    summary.update({f"seconds/{k}": v for k, v in result["stage_seconds"].items()})
    summary.update({f"cost/{k}": v for k, v in result["cost"].items()})
    run.summary.update(summary)
    art = wandb.Artifact(f"coreset-{run.id}", type="coreset", metadata=summary)
    for name in ("coreset.npy", "coreset.csv", "scores.npy", "results.json"):
        if (out_dir / name).exists():
            art.add_file(str(out_dir / name))
    run.log_artifact(art)
    images = {p.stem: wandb.Image(str(p)) for p in out_dir.glob("*.png")}
    if images:
        run.log(images)
