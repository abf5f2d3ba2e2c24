"""What a training is given (its budget) and what it gives back, whichever engine ran it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from coreset_lab.dynamics import Dynamics
from coreset_lab.errors import UserError


@dataclass
class Budget:
    """How long to train: a number of epochs, or a fixed number of iterations whatever the size
    of the training set (the CCS/ELFS protocol: 40k iterations at batch 256 on CIFAR)."""

    epochs: int | None = None
    iterations: int | None = None

    def __post_init__(self):
        if (self.epochs is None) == (self.iterations is None):
            raise UserError("set exactly one of epochs / iterations for a training budget")
        value = self.epochs if self.epochs is not None else self.iterations
        if not isinstance(value, int) or value < 1:
            raise UserError(f"a training budget must be a positive integer, got {value!r}")

    def describe(self, n_samples: int, steps_per_epoch: int) -> str:
        """What a progress line says about the training: '15 epochs of 1347 samples'."""
        if self.epochs is not None:
            return f"{self.epochs} epochs of {n_samples} samples"
        epochs = math.ceil(self.iterations / steps_per_epoch)
        return f"{self.iterations} steps ({epochs} epochs of {n_samples} samples)"


@dataclass
class FitResult:
    module: torch.nn.Module  # a ClassifierModule: normalises uint8 inputs, then the model
    dynamics: Dynamics | None
    heldout: Dynamics | None
    steps: int
    epochs: int
    seconds: float
    samples_seen: int


def samples_seen(steps: int, batch: int, n: int, steps_per_epoch: int) -> int:
    full_epochs, rest = divmod(steps, steps_per_epoch)
    return full_epochs * n + min(rest * batch, n)
