"""Train a classifier on (a subset of) a dataset with given labels; optionally record dynamics."""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins import TorchCheckpointIO
from pytorch_lightning.plugins.environments import SLURMEnvironment
from torch.utils.data import DataLoader

from coreset_lab.data.base import DataBundle, collate_batch
from coreset_lab.dynamics import Dynamics
from coreset_lab.errors import UserError
from coreset_lab.progress import ProgressLines
from coreset_lab.training.budget import Budget, FitResult, samples_seen
from coreset_lab.training.fast import (
    Plan,
    describe_training,
    load_checkpoint,
    save_checkpoint,
    train_models,
    use_fast_engine,
)
from coreset_lab.training.heldout import HeldoutRecorder
from coreset_lab.training.module import ClassifierModule
from coreset_lab.training.recipe import Recipe
from coreset_lab.training.recorder import DynamicsRecorder
from coreset_lab.training.sampler import EpochSampler

LAST = "last"  # the Lightning engine's checkpoint: last.ckpt


class IndexedDataModule(pl.LightningDataModule):
    """Builds the loader inside each process, so the sampler knows its DDP rank."""

    def __init__(self, dataset, indices: np.ndarray, recipe: Recipe, seed: int):
        super().__init__()
        self.dataset, self.indices, self.recipe, self.seed = dataset, indices, recipe, seed

    def train_dataloader(self):
        world = self.trainer.world_size if self.trainer else 1
        rank = self.trainer.global_rank if self.trainer else 0
        sampler = EpochSampler(self.indices, len(self.dataset), self.seed, rank, world)
        return DataLoader(
            self.dataset,
            batch_size=max(1, self.recipe.batch_size // world),
            sampler=sampler,
            collate_fn=collate_batch,
            num_workers=self.recipe.num_workers,
            persistent_workers=self.recipe.num_workers > 0,
            pin_memory=self.recipe.on_gpu,
        )


class DurableCheckpointIO(TorchCheckpointIO):
    """Lightning's own writer renames no temporary file into place on a local disk and never
    fsyncs: a crash can leave a truncated last.ckpt that every rerun would fail to load."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(checkpoint, path)


def _trainer(recipe: Recipe, budget: Budget, callbacks, logger, steps_per_epoch: int) -> pl.Trainer:
    if budget.iterations is not None:
        max_epochs, max_steps = math.ceil(budget.iterations / steps_per_epoch), budget.iterations
    else:
        max_epochs, max_steps = budget.epochs, -1
    return pl.Trainer(
        accelerator=recipe.accelerator,
        devices=recipe.devices,
        strategy=recipe.strategy,
        precision=recipe.resolved_precision(),
        max_epochs=max_epochs,
        max_steps=max_steps,
        callbacks=callbacks,
        logger=logger if logger is not None else False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_model_summary=False,
        enable_progress_bar=recipe.progress_mode == "bar",
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, steps_per_epoch)),
        deterministic=recipe.deterministic,
        plugins=_plugins(),
    )


def _plugins() -> list:
    plugins = [DurableCheckpointIO()]
    if SLURMEnvironment.detect():
        # Under SLURM, submitit owns requeueing (a resubmitted job resumes from the store);
        # Lightning's own auto-requeue would fight it.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def train_classifier(
    model: torch.nn.Module,
    data: DataBundle,
    labels: np.ndarray,
    recipe: Recipe,
    budget: Budget,
    *,
    indices: np.ndarray | None = None,
    seed: int = 0,
    record: bool = False,
    record_logits: bool = False,
    record_heldout: bool = False,
    logger=None,
    checkpoint_dir: Path | None = None,
    name: str = "model",
) -> FitResult:
    """Train ``model`` on ``data.train[indices]`` with ``labels`` (one per train sample).

    ``record`` keeps per-epoch dynamics of the trained samples (train mode, augmented batches);
    ``record_heldout`` also predicts every other train sample each epoch (eval mode, clean).
    ``checkpoint_dir``: save at epoch boundaries there and resume from its last checkpoint, so a
    killed training continues to the same result (RNG is re-seeded per epoch, the recorders'
    arrays are part of the checkpoint). ``name`` says in progress lines what is trained.
    """
    n = len(data.train)
    indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise UserError("cannot train on an empty set of samples")
    if (record or record_heldout) and budget.epochs is None:
        raise UserError("recording dynamics needs an epoch budget (trainer.proxy_epochs)")
    loggers = [] if logger is None else list(logger if isinstance(logger, list) else [logger])
    plan = Plan(model, indices, seed, loggers, name)
    engine = train_models if use_fast_engine(recipe, data) else _train_lightning
    return engine(
        [plan],
        data,
        labels,
        recipe,
        budget,
        record=record,
        record_logits=record_logits,
        record_heldout=record_heldout,
        checkpoint_dir=checkpoint_dir,
    )[0]


def _train_lightning(
    plans: list[Plan],
    data: DataBundle,
    labels: np.ndarray,
    recipe: Recipe,
    budget: Budget,
    *,
    record: bool,
    record_logits: bool,
    record_heldout: bool,
    checkpoint_dir: Path | None,
) -> list[FitResult]:
    """The Lightning engine, with the fast engine's signature (one plan at a time)."""
    (plan,) = plans
    model, indices, seed = plan.model, plan.indices, plan.seed
    n = len(data.train)
    pl.seed_everything(seed, workers=True, verbose=False)
    module = ClassifierModule(model, labels, recipe, data.mean, data.std, data.augment, seed)
    steps_per_epoch = math.ceil(len(indices) / recipe.batch_size)
    recorder, tmp = None, None
    if record:
        # Spawned DDP workers cannot hand the recorder back in memory: rank 0 writes a file.
        tmp = tempfile.TemporaryDirectory(prefix="coreset-lab-dyn-")
        save = Path(tmp.name) / "dynamics.npz" if recipe.devices != 1 else None
        recorder = DynamicsRecorder(budget.epochs, data.num_classes, labels, record_logits, save)
    heldout = None
    if record_heldout:
        rest = np.setdiff1d(np.arange(n), indices)
        if recipe.devices != 1:
            raise UserError("held-out recording needs a single device (trainer.devices=1)")
        heldout = HeldoutRecorder(data.train_eval, rest, labels, budget.epochs, data.num_classes)
    callbacks = [c for c in (recorder, heldout) if c is not None]
    total = budget.iterations or budget.epochs * steps_per_epoch
    what = describe_training([plan], budget, steps_per_epoch)
    callbacks.append(ProgressLines(what, total, recipe.progress_mode))
    resume = None
    if checkpoint_dir is not None:
        callbacks.append(_epoch_checkpoints(checkpoint_dir, recipe, steps_per_epoch))
        last = Path(checkpoint_dir) / f"{LAST}.ckpt"
        # Read once here so that an unreadable one is moved aside instead of failing the fit.
        resume = str(last) if load_checkpoint(last) is not None else None
    trainer = _trainer(recipe, budget, callbacks, plan.loggers or None, steps_per_epoch)
    start = time.perf_counter()
    with warnings.catch_warnings(), _interrupts_passed_on():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*number of training batches.*")
        warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # resuming from it
        trainer.fit(
            module,
            datamodule=IndexedDataModule(data.train, indices, recipe, seed),
            ckpt_path=resume,
            weights_only=False,
        )
    seconds = time.perf_counter() - start
    dynamics = None
    if recorder is not None:
        dynamics = recorder.dynamics if recorder.save_path is None else Dynamics.load(save)
        tmp.cleanup()
    steps = int(trainer.global_step)
    fit = FitResult(
        module=module,
        dynamics=dynamics,
        heldout=heldout.dynamics if heldout else None,
        steps=steps,
        epochs=int(trainer.current_epoch),
        seconds=seconds,
        samples_seen=samples_seen(steps, recipe.batch_size, len(indices), steps_per_epoch),
    )
    return [fit]


@contextmanager
def _interrupts_passed_on():
    """Lightning turns a KeyboardInterrupt (Ctrl-C, or SIGTERM as the CLI raises it) into
    sys.exit(1); the caller gets the interrupt back, to report it and exit as interrupted."""
    try:
        yield
    except SystemExit as exit_:
        if isinstance(exit_.__context__, KeyboardInterrupt):
            raise exit_.__context__ from None
        raise


def _epoch_checkpoints(directory, recipe: Recipe, steps_per_epoch: int) -> ModelCheckpoint:
    """`last.ckpt` when training is over (Lightning >= 2.6 writes `save_last` with save_top_k=0
    only then). Not at epoch ends: Lightning 2.6 resumes an epoch-end checkpoint as an unfinished
    epoch (measured: 21 steps instead of 23, other numbers), so a Lightning training interrupted
    mid-way starts over on the rerun; the fast engine resumes from its epoch-end checkpoints."""
    every = max(1, math.ceil(recipe.checkpoint_every_steps / steps_per_epoch))
    return ModelCheckpoint(
        dirpath=str(directory),
        save_last=True,
        save_top_k=0,
        every_n_epochs=every,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
