"""Records, every epoch, the predictions of the model being trained on samples it never trains on
(eval mode, no augmentation): the dynamics of *unseen* samples that UNSEEN's held-out forgetting and
AUM are computed from."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Subset

from coreset_lab.data.base import collate_batch
from coreset_lab.dynamics import Dynamics
from coreset_lab.training.recorder import batch_stats, dynamics_from_state, dynamics_state


class HeldoutRecorder(pl.Callback):
    def __init__(
        self,
        dataset,
        indices: np.ndarray,
        labels: np.ndarray,
        epochs: int,
        num_classes: int,
        batch_size: int = 512,
    ):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.batch_size = batch_size
        self.dynamics = Dynamics.empty(epochs, len(labels), num_classes)

    def state_dict(self) -> dict:
        return dynamics_state(self.dynamics)

    def load_state_dict(self, state: dict) -> None:
        self.dynamics = dynamics_from_state(state)

    @torch.inference_mode()
    def _predict(self, pl_module) -> dict[str, np.ndarray]:
        loader = DataLoader(
            Subset(self.dataset, self.indices.tolist()),
            batch_size=self.batch_size,
            collate_fn=collate_batch,
        )
        parts: dict[str, list[torch.Tensor]] = {}
        for x, idx in loader:
            logits = pl_module(x.to(pl_module.device)).float()
            stats = batch_stats(logits, self.labels[idx].to(pl_module.device))
            for k, v in stats.items():
                parts.setdefault(k, []).append(v.cpu())
        return {k: torch.cat(v).numpy() for k, v in parts.items()}

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch
        if epoch >= self.dynamics.epochs or not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        stats = self._predict(pl_module)
        pl_module.train(was_training)
        d, rows = self.dynamics, self.indices
        d.seen[epoch, rows] = True
        d.correct[epoch, rows] = stats.pop("correct") > 0.5
        for k, v in stats.items():
            getattr(d, k)[epoch, rows] = v
