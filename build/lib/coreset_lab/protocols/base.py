from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Selection:
    coreset: np.ndarray  # sorted int64 indices into the train set
    scores: np.ndarray | None  # float64 [N], higher = harder; None when nothing was scored
    extra: dict = field(default_factory=dict)  # protocol-specific facts for results.json
    # Per-sample [N] arrays for coreset.csv beside index, file and score: the pseudo-label
    # (`cluster`) of a label-free run, the UNSEEN stage that added a sample (`stage`).
    columns: dict = field(default_factory=dict)
