"""Dynamic uncertainty (Dyn-Unc; He, Yang, Huang, Zhao, "Large-scale Dataset Pruning with
Dynamic Uncertainty", CVPR 2024 workshops, arXiv 2306.05175). Higher = more uncertain = harder.

With P_t = the softmax probability of the sample's label at epoch t (what the recorder keeps as
`Dynamics.p_label`) and T recorded epochs, window k covers epochs k..k+J-1:
  U_k = sqrt( sum_j (P_{k+j} - mean_k)^2 / (J - 1) )     # the sample standard deviation
  U   = mean_k U_k over the windows k = 0..T-J
The paper keeps the MOST uncertain samples, so U is returned as is: use it with selector=topk,
keep: hard (method=dynunc).

The official code (BAAI-DCAI/Dataset-Pruning, ImageNet/get_coreset.py, README `--window 10`)
computes `torch.std` (unbiased, as above) over a rolling buffer of J epochs and averages the
windows that END at epochs J-1..T-2: its last window is left out (`idx < len(files) - 1`) and the
values are multiplied by 10 (no change to the ranking). `drop_last_window=true` reproduces that;
the default follows the paper's formula (all T-J+1 windows).

Unrecorded entries (`seen` False: a model trained on a subset): a window counts for a sample only
if all its J epochs were recorded for it; a sample without any complete window gets NaN.
"""

from __future__ import annotations

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.scoring.base import ScoreInputs, Scorer, require_dynamics
from coreset_lab.values import check_int


@register("scorer")
class DynamicUncertainty(Scorer):
    """Mean over sliding windows of J epochs of the std of the label's probability."""

    name = "dynunc"
    needs = frozenset({"dynamics"})

    def __init__(self, window: int = 10, drop_last_window: bool = False) -> None:
        self.window = check_int(window, "scorer.window", 2)
        if not isinstance(drop_last_window, (bool, np.bool_)):
            raise UserError(
                f"scorer.drop_last_window must be true or false, got {drop_last_window!r}"
            )
        self.drop_last_window = bool(drop_last_window)

    def epochs_needed(self) -> int:
        return self.window + (1 if self.drop_last_window else 0)

    def check_epochs(self, epochs: int) -> None:
        if self.epochs_needed() > epochs:
            raise UserError(
                f"scorer.window={self.window} needs at least {self.epochs_needed()} recorded "
                f"epochs, but trainer.proxy_epochs={epochs}: raise trainer.proxy_epochs or lower "
                f"scorer.window"
            )

    def __call__(self, inputs: ScoreInputs) -> np.ndarray:
        dyn = require_dynamics(inputs, self.name)
        t, j = dyn.epochs, self.window
        windows = t - j + 1 - (1 if self.drop_last_window else 0)
        if windows < 1:
            need = j + (1 if self.drop_last_window else 0)
            raise UserError(
                f"scorer.window={j} needs at least {need} recorded epochs, but the scoring model "
                f"trained for {t}: raise trainer.proxy_epochs or lower scorer.window"
            )
        total = np.zeros(dyn.num_samples, dtype=np.float64)
        count = np.zeros(dyn.num_samples, dtype=np.int64)
        # One window at a time: memory stays at a few [J, N] arrays (ImageNet: N = 1.28M).
        for k in range(windows):
            p = dyn.p_label[k : k + j].astype(np.float64)
            full = dyn.seen[k : k + j].all(axis=0)
            std = np.std(np.where(full, p, 0.0), axis=0, ddof=1)
            total += np.where(full, std, 0.0)
            count += full
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)
