"""A training recipe (optimiser, schedule, batch, hardware): the `trainer` config group."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

import torch

from coreset_lab.errors import UserError

ENGINES = ("auto", "fast", "lightning")
TRI_STATE = (True, False, "auto")


@dataclass(frozen=True)
class Recipe:
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    min_lr: float = 1e-4
    warmup_steps: int = 0
    # Warm-up as a share of the training's steps (used when > 0 instead of warmup_steps): the
    # step count of a scoring model depends on the size of the subset it trains on.
    warmup_fraction: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = True
    # Which loop trains: fast (plain PyTorch over a device-resident tensor split, see fast.py),
    # lightning (the Trainer: DDP, file-backed datasets), or auto (fast whenever it can).
    engine: str = "lightning"
    compile: bool | str = False  # torch.compile in the fast engine; auto: on CUDA only
    channels_last: bool | str = "auto"  # auto: on CUDA only (CPU convolutions are slower)
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
        if not isinstance(self.lr, int | float) or not math.isfinite(self.lr) or self.lr <= 0:
            raise UserError(f"trainer.lr must be a positive number, got {self.lr!r}")
        if not isinstance(self.warmup_fraction, int | float) or not 0 <= self.warmup_fraction < 1:
            raise UserError(
                f"trainer.warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}"
            )
        if self.engine not in ENGINES:
            raise UserError(
                f"trainer.engine must be one of {', '.join(ENGINES)}, got {self.engine!r}"
            )
        for key in ("compile", "channels_last"):
            if getattr(self, key) not in TRI_STATE:
                raise UserError(
                    f"trainer.{key} must be true, false or auto, got {getattr(self, key)!r}"
                )

    @property
    def on_gpu(self) -> bool:
        return self.accelerator in ("gpu", "cuda") or (
            self.accelerator == "auto" and torch.cuda.is_available()
        )

    @property
    def device(self) -> torch.device:
        return torch.device("cuda" if self.on_gpu else "cpu")

    @property
    def progress_mode(self) -> str:
        """bar, lines (in a log: SLURM, nohup) or off; see coreset_lab/progress.py."""
        from coreset_lab.progress import mode

        return mode(self.progress)

    def resolved_precision(self) -> str:
        if self.precision != "auto":
            return self.precision
        return "bf16-mixed" if self.on_gpu else "32-true"

    def switch(self, key: str) -> bool:
        """A true/false/auto option resolved for this recipe's device (auto: on CUDA only)."""
        value = getattr(self, key)
        return self.on_gpu if value == "auto" else bool(value)

    def warmup(self, total_steps: int) -> int:
        if self.warmup_fraction > 0:
            return max(1, round(self.warmup_fraction * total_steps))
        return self.warmup_steps

    def for_scoring(self) -> Recipe:
        """The recipe of a model whose outputs become scores: no label smoothing, which would
        flatten the confidences and margins the scores are made of (targets keep it)."""
        return dataclasses.replace(self, label_smoothing=0.0)
