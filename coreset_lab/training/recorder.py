"""Records per-sample training dynamics every epoch, streaming into preallocated [E, N] arrays.

Per batch it only scatters a few numbers per sample into device buffers (no host sync, no Python
lists); at the end of each epoch the buffers are summed across ranks (each sample is recorded on
exactly one rank) and copied into row `epoch` of the host arrays.
"""

from __future__ import annotations

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


def dynamics_state(d: Dynamics | None) -> dict:
    """Recorded epochs go into training checkpoints, so a resumed run keeps them."""
    return {} if d is None else {k: torch.from_numpy(v.copy()) for k, v in d.arrays().items()}


def dynamics_from_state(state: dict) -> Dynamics | None:
    return Dynamics(**{k: v.numpy() for k, v in state.items()}) if state else None


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
        self._buf: dict[str, torch.Tensor] = {}

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
        dev = pl_module.device
        self._buf = {k: torch.zeros(self.n, device=dev) for k in _STATS}
        self._buf["count"] = torch.zeros(self.n, device=dev)
        if self.record_logits:
            self._buf["logits"] = torch.zeros(self.n, self.num_classes, device=dev)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        real = outputs["real"]
        idx = outputs["index"][real]
        logits = outputs["logits"][real]
        stats = batch_stats(logits, pl_module.labels[idx])
        for k, v in stats.items():
            self._buf[k].index_add_(0, idx, v)
        self._buf["count"].index_add_(0, idx, torch.ones_like(idx, dtype=torch.float32))
        if self.record_logits:
            self._buf["logits"].index_add_(0, idx, logits.float())

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch
        if epoch >= self.epochs:
            return
        buf = {k: trainer.strategy.reduce(v, reduce_op="sum") for k, v in self._buf.items()}
        count = buf.pop("count").cpu().numpy()
        if (count > 1).any():
            raise RuntimeError(
                f"dynamics recorder: {int((count > 1).sum())} samples recorded twice"
            )
        seen = count > 0
        d = self.dynamics
        d.seen[epoch] = seen
        for k in _STATS:
            row = buf[k].cpu().numpy()
            target = getattr(d, k)
            target[epoch][seen] = row[seen] > 0.5 if k == "correct" else row[seen]
        if self.record_logits:
            d.logits[epoch][seen] = buf["logits"].cpu().numpy()[seen].astype(np.float16)
        self._buf = {}

    def on_train_end(self, trainer, pl_module):
        if self.save_path is not None and trainer.is_global_zero:
            self.dynamics.save(self.save_path)
