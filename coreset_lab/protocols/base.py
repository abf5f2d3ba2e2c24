from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Selection:
    coreset: np.ndarray  # sorted int64 indices into the train set
    scores: np.ndarray | None  # float64 [N], higher = harder; None when nothing was scored
    extra: dict = field(default_factory=dict)  # protocol-specific facts for results.json
