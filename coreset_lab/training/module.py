"""The one LightningModule that trains every classifier: proxy, fold, stage and target models.

Labels live in the module, not in the dataset: items are (image, index) and the label of a batch
is ``labels[index]``. Which label vector a model sees (ground truth or pseudo-labels) is thus
decided in one place by the protocol, never by the data pipeline.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from coreset_lab.data.base import Augment
from coreset_lab.training.augment import augment, normalize
from coreset_lab.training.optim import sgd_with_schedule
from coreset_lab.training.recipe import Recipe


class ClassifierModule(pl.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        labels: np.ndarray,
        recipe: Recipe,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augmentation: Augment,
        seed: int = 0,
    ):
        super().__init__()
        self.seed = seed
        self.model = model
        self.recipe = recipe
        self.augmentation = augmentation if recipe.augment else Augment()
        self.n_total = len(labels)
        self.register_buffer("labels", torch.as_tensor(labels, dtype=torch.long), persistent=False)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)

    def _epoch_generator(self) -> torch.Generator:
        """The augmentation generator of the current epoch, made at its first step.

        Augmentation randomness depends only on (seed, epoch): a run resumed from an epoch-end
        checkpoint draws exactly what the uninterrupted run drew. Made lazily rather than in
        on_train_epoch_start, which Lightning skips when it resumes from a checkpoint written at
        an epoch's end. Its own generator, not the global RNG: other consumers (a DataLoader
        drawing its base seed) would shift the draws, and the fast engine could not draw the same.
        """
        epoch = self.current_epoch
        if getattr(self, "_generator_epoch", None) != epoch:
            seed = augmentation_seed(self.seed, epoch)
            self._generator = torch.Generator(self.device).manual_seed(seed)
            self._generator_epoch = epoch
        return self._generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self.mean, self.std)

    def augment_batch(self, x: torch.Tensor, generator: torch.Generator | None = None):
        return augment(x, self.augmentation.crop_pad, self.augmentation.flip, generator)

    def training_step(self, batch, batch_idx):
        x, raw_idx = batch
        idx = raw_idx % self.n_total
        x = self.augment_batch(self.normalize(x), self._epoch_generator())
        logits = self.model(x)
        y = self.labels[idx]
        loss = F.cross_entropy(logits, y, label_smoothing=self.recipe.label_smoothing)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        # The recorder reads these; padding copies (raw index >= N) are trained on but not recorded.
        return {
            "loss": loss,
            "logits": logits.detach(),
            "index": idx,
            "real": raw_idx < self.n_total,
        }

    def configure_optimizers(self):
        total = max(1, int(self.trainer.estimated_stepping_batches))
        opt, sched = sgd_with_schedule(self.model.parameters(), self.recipe, total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def augmentation_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch
