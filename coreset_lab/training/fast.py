"""The fast engine: plain PyTorch over a device-resident split, one model or several at once.

It computes what the Lightning engine computes: the same epoch order of every model's samples
(`EpochSampler`), the same augmentation draws (a generator per model, seeded every epoch as the
Lightning module seeds the global RNG), the same optimiser and per-iteration schedule and the
same per-sample records; on the CPU in float32 the two agree to rounding
(tests/test_fast_engine.py). What it leaves out is the machinery between steps: no DataLoader
(the split lives on the device as one uint8 tensor and a batch is an index gather there), no
Trainer hooks, no host synchronisation inside an epoch. On CUDA it adds channels_last, bf16
autocast and, optionally, `torch.compile` (compiled once per architecture and process).

Several models of one architecture (UNSEEN's folds, repeats) can train together as one vmapped
model (`StackedStepper`): each keeps its own samples, seed, augmentation draws, records and
learning-rate schedule.

Checkpoints: every `checkpoint_every_steps` or so, at an epoch's end, the whole state (weights,
optimiser, schedule, records) goes to `checkpoint_dir/fast-last.pt`; a rerun resumes there. A
checkpoint that cannot be read (a node crashed while writing it) is moved aside and training
starts over.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from coreset_lab.data.base import DataBundle, TensorImageSet
from coreset_lab.dynamics import Dynamics
from coreset_lab.errors import UserError
from coreset_lab.files import temp_path
from coreset_lab.progress import Progress
from coreset_lab.training.budget import Budget, FitResult, samples_seen
from coreset_lab.training.heldout import record_heldout
from coreset_lab.training.module import ClassifierModule, augmentation_seed
from coreset_lab.training.recipe import Recipe
from coreset_lab.training.recorder import EpochBuffers, dynamics_from_state, dynamics_state
from coreset_lab.training.resident import resident_images
from coreset_lab.training.sampler import EpochSampler
from coreset_lab.training.steppers import SingleStepper, StackedStepper

CHECKPOINT = "fast-last.pt"
log = logging.getLogger(__name__)


@dataclass
class Plan:
    """One model to train: its initial weights, the samples it trains on, its seed."""

    model: nn.Module
    indices: np.ndarray
    seed: int
    loggers: list = field(default_factory=list)
    name: str = "model"  # what progress lines call it: proxy, fold 2 (seed 0), target, ...


def use_fast_engine(recipe: Recipe, data: DataBundle) -> bool:
    """Whether `recipe.engine` (auto, fast, lightning) picks the fast engine for `data`."""
    if recipe.engine == "lightning":
        return False
    fits = isinstance(data.train, TensorImageSet) and recipe.devices == 1
    if recipe.engine == "fast" and not fits:
        raise UserError(
            "trainer.engine=fast trains on an in-memory split on one device (digits, "
            "fashion_mnist, cifar10/100, stl10 with trainer.devices=1); use trainer.engine=auto "
            "or lightning for image folders and DDP"
        )
    return fits


def autocast_for(recipe: Recipe, device: torch.device):
    precision = str(recipe.resolved_precision())
    if precision in ("32-true", "32"):
        return contextlib.nullcontext
    if precision == "bf16-mixed":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    raise UserError(
        f"trainer.precision={precision} is not supported by trainer.engine=fast "
        f"(32-true or bf16-mixed); use trainer.engine=lightning for it"
    )


class _Track:
    """One model's order of samples, augmentation generator, records and counters."""

    def __init__(self, plan: Plan, data: DataBundle, labels, recipe: Recipe, budget: Budget,
                 record: bool, record_logits: bool, record_heldout: bool):  # fmt: skip
        self.plan = plan
        self.module = ClassifierModule(
            plan.model, labels, recipe, data.mean, data.std, data.augment, plan.seed
        )
        n, self.n_train, self.num_classes = len(labels), len(plan.indices), data.num_classes
        self.batch_size = recipe.batch_size
        self.sampler = EpochSampler(plan.indices, n, plan.seed)
        self.steps_per_epoch = math.ceil(self.n_train / recipe.batch_size)
        self.total_steps = budget.iterations or budget.epochs * self.steps_per_epoch
        self.max_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.step = 0
        c = self.num_classes
        self.dynamics = Dynamics.empty(budget.epochs, n, c, record_logits) if record else None
        self.heldout = Dynamics.empty(budget.epochs, n, c) if record_heldout else None
        self.rest = np.setdiff1d(np.arange(n), plan.indices) if record_heldout else None

    def begin_epoch(self, epoch: int, device: torch.device) -> int:
        """Steps this model takes in `epoch` (0 once its budget is spent)."""
        self.sampler.set_epoch(epoch)
        self.order = self.sampler.epoch_order().to(device)
        self.generator = torch.Generator(device).manual_seed(
            augmentation_seed(self.plan.seed, epoch)
        )
        if self.dynamics is not None:
            d = self.dynamics
            logits = d.logits is not None
            self.buffers = EpochBuffers(d.num_samples, self.num_classes, device, logits)
        self.loss_sum = torch.zeros((), device=device)
        return min(self.steps_per_epoch, self.total_steps - self.step)

    def batch(self, j: int, images: torch.Tensor, channels_last: bool):
        idx = self.order[j * self.batch_size : (j + 1) * self.batch_size]
        m = self.module
        x = m.normalize(images[idx])
        x = m.augment_batch(x, self.generator)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return idx, x, m.labels[idx]

    def after_step(self, idx: torch.Tensor, logits: torch.Tensor, loss: torch.Tensor) -> None:
        self.step += 1
        self.loss_sum += loss * idx.numel()
        if self.dynamics is not None:
            self.buffers.add(idx, logits, self.module.labels[idx])

    def end_epoch(self, epoch: int, forward, data: DataBundle, steps: int, device) -> None:
        if self.dynamics is not None:
            self.buffers.write(self.dynamics, epoch)
            self.buffers = None
        if self.heldout is not None and self.rest.size:
            normalized = lambda x: forward(self.module.normalize(x))  # noqa: E731
            labels = self.module.labels
            record_heldout(
                normalized, data.train_eval, self.rest, labels, self.heldout, epoch, device
            )
        seen = min(steps * self.batch_size, self.n_train)
        metrics = {"train/loss": self.loss_sum.item() / max(seen, 1), "epoch": epoch}
        for logger in self.plan.loggers:
            logger.log_metrics(metrics, step=self.step)

    def result(self, seconds: float) -> FitResult:
        for logger in self.plan.loggers:
            logger.finalize("success")
        return FitResult(
            module=self.module,
            dynamics=self.dynamics,
            heldout=self.heldout,
            steps=self.step,
            epochs=math.ceil(self.step / self.steps_per_epoch),
            seconds=seconds,
            samples_seen=samples_seen(
                self.step, self.batch_size, self.n_train, self.steps_per_epoch
            ),
        )

    def state(self) -> dict:
        return {"step": self.step, "dynamics": dynamics_state(self.dynamics),
                "heldout": dynamics_state(self.heldout)}  # fmt: skip

    def restore(self, state: dict) -> None:
        self.step = state["step"]
        self.dynamics = dynamics_from_state(state["dynamics"]) if self.dynamics else None
        self.heldout = dynamics_from_state(state["heldout"]) if self.heldout else None


def train_models(
    plans: list[Plan],
    data: DataBundle,
    labels: np.ndarray,
    recipe: Recipe,
    budget: Budget,
    *,
    record: bool = False,
    record_logits: bool = False,
    record_heldout: bool = False,
    checkpoint_dir: Path | None = None,
) -> list[FitResult]:
    """Train every plan's model on its samples with `labels`; one stepper for all of them."""
    device = recipe.device
    _configure_backends(recipe, device)
    channels_last = recipe.switch("channels_last") and len(plans) == 1
    images = resident_images(data.train, device)
    records = (record, record_logits, record_heldout)
    tracks = [_Track(p, data, labels, recipe, budget, *records) for p in plans]
    for t in tracks:
        t.module.to(device)
        if channels_last:
            t.module.to(memory_format=torch.channels_last)
    stepper = _stepper(tracks, recipe, device, autocast_for(recipe, device))
    start = _resume(checkpoint_dir, stepper, tracks)
    every = max(
        1, math.ceil(recipe.checkpoint_every_steps / min(t.steps_per_epoch for t in tracks))
    )
    max_epochs = max(t.max_epochs for t in tracks)
    bar = Progress(
        describe_training(plans, budget, tracks[0].steps_per_epoch),
        sum(t.total_steps for t in tracks),
        show=recipe.progress_mode,
        initial=sum(t.step for t in tracks),
    )
    clock = time.perf_counter()
    with bar:
        for epoch in range(start, max_epochs):
            steps = [t.begin_epoch(epoch, device) for t in tracks]
            for j in range(max(steps)):
                members = [k for k, s in enumerate(steps) if j < s]
                batches = [tracks[k].batch(j, images, channels_last) for k in members]
                logits, losses = stepper.train_step(
                    members, [b[1] for b in batches], [b[2] for b in batches]
                )
                for k, b, z, loss in zip(members, batches, logits, losses, strict=True):
                    tracks[k].after_step(b[0], z, loss)
                bar.update(len(members))
            for k, t in enumerate(tracks):
                if steps[k]:
                    t.end_epoch(epoch, stepper.eval_forward(k), data, steps[k], device)
            if checkpoint_dir is not None and (epoch + 1) % every == 0 and epoch + 1 < max_epochs:
                _save(checkpoint_dir, epoch + 1, stepper, tracks)
    stepper.finish()
    seconds = (time.perf_counter() - clock) / len(tracks)  # each model's share of the time
    return [t.result(seconds) for t in tracks]


def describe_training(plans: list[Plan], budget: Budget, steps_per_epoch: int) -> str:
    """'training proxy: 15 epochs of 1347 samples', or a group's first and last names."""
    what = budget.describe(len(plans[0].indices), steps_per_epoch)
    if len(plans) == 1:
        return f"training {plans[0].name}: {what}"
    names = f"{plans[0].name} ... {plans[-1].name}"
    return f"training {len(plans)} models together ({names}): {what} each"


def _configure_backends(recipe: Recipe, device: torch.device) -> None:
    """As Lightning does for `deterministic`; otherwise let cuDNN pick its fastest kernels
    (fixed shapes, so the search is paid once per shape)."""
    torch.use_deterministic_algorithms(recipe.deterministic, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not recipe.deterministic


def _stepper(tracks: list[_Track], recipe: Recipe, device: torch.device, autocast):
    if len(tracks) == 1:
        t = tracks[0]
        compile_ = recipe.switch("compile")
        return SingleStepper(t.module.model, recipe, t.total_steps, device, compile_, autocast)
    models, totals = [t.module.model for t in tracks], [t.total_steps for t in tracks]
    return StackedStepper(models, recipe, totals, autocast)


def _save(directory: Path, epoch: int, stepper, tracks: list[_Track]) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {"epoch": epoch, "stepper": stepper.state_dict(), "tracks": [t.state() for t in tracks]}
    save_checkpoint(state, directory / CHECKPOINT)


def _resume(directory: Path | None, stepper, tracks: list[_Track]) -> int:
    """The epoch to start from: 0, or where the last checkpoint in `directory` left off."""
    state = load_checkpoint(Path(directory) / CHECKPOINT) if directory is not None else None
    if state is None:
        return 0
    stepper.load_state_dict(state["stepper"])
    for t, s in zip(tracks, state["tracks"], strict=True):
        t.restore(s)
    return int(state["epoch"])


def save_checkpoint(state: dict, path: Path) -> None:
    """Write `state` to `path` atomically and durably: without the fsync a node crash can leave
    the renamed file empty or truncated (the data was still in the page cache)."""
    tmp = temp_path(path)
    with _interrupts_deferred():
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)


@contextlib.contextmanager
def _interrupts_deferred():
    """Ctrl-C and SIGTERM (which the CLI raises as an exception) wait until a checkpoint is
    written or read whole: raised inside torch's serialisation, which calls back into Python to
    write and read, they break its zip writer and surface as a RuntimeError (a traceback, and
    a failed record instead of an interrupted run)."""
    signals = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or any(
        signal.getsignal(s) is None
        for s in signals  # set outside Python: cannot be restored
    ):
        yield  # (only the main thread runs Python signal handlers)
        return
    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: received.append(signum)) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])  # now handled as it would have been


def _fsync_directory(directory: Path) -> None:
    """Makes the rename itself durable; best effort (not every file system syncs directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint at `path`; None if there is none or it cannot be read. An unreadable one
    (truncated by a crash) would fail every rerun: it is moved aside (`<name>.corrupt-<time>`)."""
    if not path.exists():
        return None
    try:
        with _interrupts_deferred():
            return torch.load(path, map_location="cpu", weights_only=False)
    except MemoryError:  # the machine's problem, not the file's
        raise
    except Exception as err:  # a damaged file shows in many ways (zip, pickle, EOF, EINVAL)
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        reason = (str(err).strip().splitlines() or [""])[0]
        log.warning(
            "checkpoint %s cannot be read (%s: %s): moved to %s, training from the start",
            path,
            type(err).__name__,
            reason,
            aside.name,
        )
        os.replace(path, aside)
        return None
