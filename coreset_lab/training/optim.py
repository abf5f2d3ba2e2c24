"""The one schedule, the optimisers and the Lightning set-up every training here shares: the
classifier engines (fast and Lightning, one model or a vmapped group), SimCLR and TEMI.

Each keeps the optimiser its paper uses (SGD for the classifiers and SimCLR's SGD recipe, Adam
for SimCLR's CPU recipe, AdamW for TEMI), built here; all step the same per-iteration cosine
after a linear warm-up.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch

from coreset_lab.training.recipe import Recipe


def cosine_with_warmup(total_steps: int, warmup_steps: int, floor: float = 0.0) -> Callable:
    """The learning-rate factor of step `step`: linear from 1/warmup to 1 over `warmup_steps`,
    then a cosine from 1 to `floor` (min lr / lr) at `total_steps`, flat after."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


def recipe_schedule(total_steps: int, r: Recipe) -> Callable:
    """The classifiers' schedule: the recipe's warm-up, a cosine from lr to min_lr."""
    return cosine_with_warmup(total_steps, r.warmup(total_steps), r.min_lr / r.lr)


def sgd(params, lr: float, momentum: float, weight_decay: float, nesterov: bool = False):
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov and momentum > 0,
        weight_decay=weight_decay,
    )


def sgd_with_schedule(params, r: Recipe, total_steps: int):
    """The optimiser of every recipe (SGD, optional Nesterov) and its per-iteration schedule."""
    opt = sgd(params, r.lr, r.momentum, r.weight_decay, r.nesterov)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, recipe_schedule(total_steps, r))


def per_step(opt, factor: Callable) -> dict:
    """What a LightningModule's configure_optimizers returns for a per-iteration schedule."""
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def helper_trainer(accelerator: str, precision: str, epochs: int, **kwargs):
    """A one-device Lightning trainer for a training that is a stage's means, not a classifier
    of the run (SimCLR, TEMI): no logger, no checkpoints, no summary, no sanity check."""
    import pytorch_lightning as pl

    kwargs.setdefault("enable_progress_bar", False)
    return pl.Trainer(
        accelerator="gpu" if accelerator == "cuda" else accelerator,
        devices=1,
        precision=precision,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def fit_in_process(trainer, module, loader) -> None:
    """trainer.fit on batches built in this process, on purpose (the data is resident)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        trainer.fit(module, train_dataloaders=loader)
