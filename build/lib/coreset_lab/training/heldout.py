"""Records, every epoch, the predictions of the model being trained on samples it never trains on
(eval mode, no augmentation): the dynamics of *unseen* samples that UNSEEN's held-out forgetting and
AUM are computed from."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch

from coreset_lab.dynamics import Dynamics
from coreset_lab.training.recorder import (
    batch_stats,
    dynamics_from_state,
    dynamics_state,
    write_rows,
)
from coreset_lab.training.resident import eval_batches


@torch.inference_mode()
def record_heldout(
    forward: Callable[[torch.Tensor], torch.Tensor],
    dataset,
    indices: np.ndarray,
    labels: torch.Tensor,
    d: Dynamics,
    epoch: int,
    device: torch.device,
) -> None:
    """Row `epoch` of `d` for the samples `indices`: `forward` (an eval-mode model) on clean
    inputs, against `labels` (all N of them, on `device`)."""
    parts: dict[str, list[torch.Tensor]] = {}
    for x, idx in eval_batches(dataset, device, indices):
        stats = batch_stats(forward(x).float(), labels[idx.to(labels.device)])
        for k, v in stats.items():
            parts.setdefault(k, []).append(v.cpu())
    write_rows(d, epoch, indices, {k: torch.cat(v).numpy() for k, v in parts.items()})


class HeldoutRecorder(pl.Callback):
    def __init__(
        self,
        dataset,
        indices: np.ndarray,
        labels: np.ndarray,
        epochs: int,
        num_classes: int,
    ):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.dynamics = Dynamics.empty(epochs, len(labels), num_classes)

    def state_dict(self) -> dict:
        return dynamics_state(self.dynamics)

    def load_state_dict(self, state: dict) -> None:
        self.dynamics = dynamics_from_state(state)

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch
        if epoch >= self.dynamics.epochs or not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        labels = self.labels.to(pl_module.device)
        record_heldout(
            pl_module, self.dataset, self.indices, labels, self.dynamics, epoch, pl_module.device
        )
        pl_module.train(was_training)
