"""Per-sample training dynamics: what the recorder writes and what dynamics scorers read.

Every array is indexed [epoch, sample] over the *whole* train set, so a model trained on a subset
(a fold, a coreset) leaves the rows of unseen samples at their fill value and `seen` says which
entries are real.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from coreset_lab.errors import UserError


@dataclass
class Dynamics:
    p_label: np.ndarray  # float32 [E, N] softmax probability of the training label
    p_other: np.ndarray  # float32 [E, N] largest softmax probability among the other classes
    correct: np.ndarray  # bool    [E, N] argmax == training label
    loss: np.ndarray  # float32 [E, N] cross-entropy against the training label
    p_sqnorm: np.ndarray  # float32 [E, N] sum_c p_c^2 (with p_label gives EL2N without logits)
    seen: np.ndarray  # bool    [E, N] the sample was recorded in that epoch
    logits: np.ndarray | None = None  # float16 [E, N, C], only when asked for (TDDS needs it)

    @property
    def epochs(self) -> int:
        return self.p_label.shape[0]

    @property
    def num_samples(self) -> int:
        return self.p_label.shape[1]

    @classmethod
    def empty(cls, epochs: int, n: int, num_classes: int, logits: bool = False) -> Dynamics:
        if logits:
            what = f"per-epoch logits [{epochs}, {n}, {num_classes}] (scorer=tdds)"
            _check_fits(epochs * n * num_classes * 2, what)

        def f32():
            return np.full((epochs, n), np.nan, dtype=np.float32)

        return cls(
            p_label=f32(),
            p_other=f32(),
            correct=np.zeros((epochs, n), dtype=bool),
            loss=f32(),
            p_sqnorm=f32(),
            seen=np.zeros((epochs, n), dtype=bool),
            logits=np.zeros((epochs, n, num_classes), dtype=np.float16) if logits else None,
        )

    @classmethod
    def from_logits(cls, logits: np.ndarray, labels: np.ndarray) -> Dynamics:
        """Dynamics from a [E, N, C] stack of logits: the reference for tests and toy inputs."""
        z = logits.astype(np.float64)
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        rows = np.arange(z.shape[1])
        p_label = p[:, rows, labels]
        others = p.copy()
        others[:, rows, labels] = -np.inf
        return cls(
            p_label=p_label.astype(np.float32),
            p_other=others.max(-1).astype(np.float32),
            correct=p.argmax(-1) == labels[None, :],
            loss=(-np.log(np.clip(p_label, 1e-30, None))).astype(np.float32),
            p_sqnorm=(p**2).sum(-1).astype(np.float32),
            seen=np.ones(z.shape[:2], dtype=bool),
            logits=logits.astype(np.float16),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if v is not None}

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, **self.arrays())

    @classmethod
    def load(cls, path: str | Path) -> Dynamics:
        with np.load(path) as z:
            return cls(**{k: z[k] for k in z.files})


def _check_fits(nbytes: int, what: str) -> None:
    """A clear error instead of an out-of-memory kill half-way through a training."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if nbytes > 0.8 * memory:
        raise UserError(
            f"recording {what} needs {nbytes / 2**30:.0f} GiB, more than this machine's "
            f"{memory / 2**30:.0f} GiB of memory; use fewer trainer.proxy_epochs or a train "
            f"subset (dataset.train_subset), or a scorer without logits (aum, forgetting, el2n)"
        )
