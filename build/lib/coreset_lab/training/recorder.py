"""Records per-sample training dynamics every epoch, streaming into preallocated [E, N] arrays.

Per batch it only scatters a few numbers per sample into device buffers (no host sync, no Python
lists); at the end of each epoch the buffers are summed across ranks (each sample is recorded on
exactly one rank) and copied into row `epoch` of the host arrays. `EpochBuffers` does the work
for both engines; `DynamicsRecorder` is its Lightning callback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from coreset_lab.dynamics import Dynamics

_STATS = ("p_label", "p_other", "correct", "loss", "p_sqnorm")


def batch_stats(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    logp = torch.log_softmax(logits.float(), dim=1)
    p = logp.exp()
    p_label = p.gather(1, labels[:, None]).squeeze(1)
    p_other = p.scatter(1, labels[:, None], -1.0).amax(1)
    return {
        "p_label": p_label,
        "p_other": p_other,
        "correct": (logits.argmax(1) == labels).float(),
        "loss": -logp.gather(1, labels[:, None]).squeeze(1),
        "p_sqnorm": (p * p).sum(1),
    }


def write_rows(d: Dynamics, epoch: int, rows: np.ndarray, stats: dict[str, np.ndarray]) -> None:
    """Put one epoch's statistics of the samples `rows` into the host arrays."""
    d.seen[epoch, rows] = True
    for k in _STATS:
        value = stats[k] > 0.5 if k == "correct" else stats[k]
        getattr(d, k)[epoch, rows] = value


def dynamics_state(d: Dynamics | None) -> dict:
    """Recorded epochs go into training checkpoints, so a resumed run keeps them."""
    return {} if d is None else {k: torch.from_numpy(v.copy()) for k, v in d.arrays().items()}


def dynamics_from_state(state: dict) -> Dynamics | None:
    return Dynamics(**{k: v.numpy() for k, v in state.items()}) if state else None


class EpochBuffers:
    """One epoch of per-sample statistics, accumulated on the device by scatter-adds."""

    def __init__(self, n: int, num_classes: int, device, logits: bool = False):
        self._buf = {k: torch.zeros(n, device=device) for k in (*_STATS, "count")}
        if logits:
            self._buf["logits"] = torch.zeros(n, num_classes, device=device)

    def add(self, idx: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        for k, v in batch_stats(logits, labels).items():
            self._buf[k].index_add_(0, idx, v)
        self._buf["count"].index_add_(0, idx, torch.ones_like(idx, dtype=torch.float32))
        if "logits" in self._buf:
            self._buf["logits"].index_add_(0, idx, logits.float())

    def write(self, d: Dynamics, epoch: int, reduce: Callable = lambda t: t) -> None:
        """Row `epoch` of `d` from these buffers (after `reduce`, e.g. a sum over DDP ranks)."""
        buf = {k: reduce(v).cpu().numpy() for k, v in self._buf.items()}
        count = buf.pop("count")
        if (count > 1).any():
            raise RuntimeError(
                f"dynamics recorder: {int((count > 1).sum())} samples recorded twice"
            )
        rows = np.flatnonzero(count > 0)
        write_rows(d, epoch, rows, {k: buf[k][rows] for k in _STATS})
        if "logits" in buf:
            d.logits[epoch][rows] = buf["logits"][rows].astype(np.float16)


class DynamicsRecorder(pl.Callback):
    def __init__(
        self,
        epochs: int,
        num_classes: int,
        labels: np.ndarray,
        record_logits: bool = False,
        save_path: str | Path | None = None,
    ):
        self.epochs = epochs
        self.num_classes = num_classes
        self.n = len(labels)
        self.record_logits = record_logits
        self.save_path = save_path
        self.dynamics: Dynamics | None = None
        self._buffers: EpochBuffers | None = None

    def on_train_start(self, trainer, pl_module):
        if self.dynamics is None:  # not restored from a checkpoint
            self.dynamics = Dynamics.empty(
                self.epochs, self.n, self.num_classes, self.record_logits
            )

    def state_dict(self) -> dict:
        return dynamics_state(self.dynamics)

    def load_state_dict(self, state: dict) -> None:
        self.dynamics = dynamics_from_state(state)

    def on_train_epoch_start(self, trainer, pl_module):
        self._buffers = EpochBuffers(self.n, self.num_classes, pl_module.device, self.record_logits)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        real = outputs["real"]
        idx = outputs["index"][real]
        self._buffers.add(idx, outputs["logits"][real], pl_module.labels[idx])

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch < self.epochs:
            reduce = lambda t: trainer.strategy.reduce(t, reduce_op="sum")  # noqa: E731
            self._buffers.write(self.dynamics, trainer.current_epoch, reduce)
        self._buffers = None

    def on_train_end(self, trainer, pl_module):
        if self.save_path is not None and trainer.is_global_zero:
            self.dynamics.save(self.save_path)
