"""A training recipe (optimiser, schedule, batch, hardware): the `trainer` config group."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from coreset_lab.errors import UserError


@dataclass(frozen=True)
class Recipe:
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    min_lr: float = 1e-4
    warmup_steps: int = 0
    label_smoothing: float = 0.0
    augment: bool = True
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    deterministic: bool = False
    progress: str | bool = "auto"
    checkpoint_every_steps: int = 2000

    @classmethod
    def from_config(cls, cfg: Any) -> Recipe:
        known = {f.name for f in fields(cls)}
        given = dict(cfg)
        kwargs = {k: v for k, v in given.items() if k in known}
        recipe = cls(**kwargs)
        recipe.validate()
        return recipe

    def validate(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UserError(
                f"trainer.batch_size must be a positive integer, got {self.batch_size!r}"
            )
        if not isinstance(self.lr, int | float) or self.lr <= 0:
            raise UserError(f"trainer.lr must be a positive number, got {self.lr!r}")

    @property
    def on_gpu(self) -> bool:
        return self.accelerator in ("gpu", "cuda") or (
            self.accelerator == "auto" and torch.cuda.is_available()
        )

    def resolved_precision(self) -> str:
        if self.precision != "auto":
            return self.precision
        return "bf16-mixed" if self.on_gpu else "32-true"
