"""A training recipe (optimiser, schedule, batch, hardware): the `trainer` config group."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from coreset_lab.errors import UserError
from coreset_lab.values import check_bool, check_choice, check_int, check_real, one_of

ENGINES = ("auto", "fast", "lightning")
PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "bf16", "16-mixed", "16", "64-true", "64")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
INF = float("inf")


def _real(low, high, **kw):
    return lambda v, k: check_real(v, k, low, high, **kw)


def _int(low, high=None):
    return lambda v, k: check_int(v, k, low, high)


def _text(value, key):
    if not isinstance(value, str) or not value:
        raise UserError(f"{key} must be a name, got {value!r}")


# One check per option: type and range (NaN and infinities are not numbers here).
OPTION_CHECKS: dict[str, Callable[[object, str], object]] = {
    "batch_size": _int(1),
    "lr": _real(0.0, INF, low_open=True),
    "momentum": _real(0.0, 1.0, high_open=True),
    "nesterov": check_bool,
    "weight_decay": _real(0.0, INF),
    "min_lr": _real(0.0, INF),
    "warmup_steps": _int(0),
    "warmup_fraction": _real(0.0, 1.0, high_open=True),
    "label_smoothing": _real(0.0, 1.0, high_open=True),
    "augment": check_bool,
    "engine": lambda v, k: check_choice(v, k, ENGINES),
    "compile": one_of(True, False, "auto"),
    "channels_last": one_of(True, False, "auto"),
    "accelerator": lambda v, k: check_choice(v, k, ACCELERATORS),
    "devices": _int(1),
    "strategy": _text,
    "precision": one_of(*PRECISIONS, 16, 32, 64),
    "num_workers": _int(0),
    "deterministic": check_bool,
    "progress": one_of(True, False, "auto"),
    "checkpoint_every_steps": _int(1),
}


def check_options(values: dict, key_of: Callable[[str], str] = lambda n: f"trainer.{n}") -> None:
    """Every option given in `values` and the ones that must agree (defaults for the others);
    `key_of` names an option in a message."""
    for name, check in OPTION_CHECKS.items():
        if name in values:
            check(values[name], key_of(name))
    lr, min_lr = values.get("lr", 0.1), values.get("min_lr", 0.0)
    if min_lr > lr:
        raise UserError(
            f"{key_of('min_lr')}={min_lr} is above {key_of('lr')}={lr}: the cosine schedule "
            f"decays from lr to min_lr"
        )
    if values.get("nesterov", False) and values.get("momentum", 0.9) == 0:
        raise UserError(
            f"{key_of('nesterov')}=true needs {key_of('momentum')} > 0 (SGD refuses Nesterov "
            f"without momentum); set nesterov=false or a momentum"
        )
    accelerator = values.get("accelerator", "auto")
    cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if str(values.get("precision")) in ("16-mixed", "16") and cpu:
        # Lightning refuses fp16 autocast on the CPU only once training starts.
        raise UserError(
            f"{key_of('precision')}={values['precision']} needs a CUDA GPU; on the CPU use "
            f"bf16-mixed or 32-true"
        )


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
        check_options(dataclasses.asdict(self))

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
