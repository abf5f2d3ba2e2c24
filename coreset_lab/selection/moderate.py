"""Moderate selection (Moderate-DS, Xia et al., ICLR 2023): keep the samples whose score is
closest to the median score, i.e. drop both the easiest and the hardest ends.

The official code (tmlr-group/Moderate-DS, `get_prune_idx`) sorts all distances ascending (one
global ranking over the classes) and, for a kept fraction r, prunes the first round(N(1-r)/2)
and everything from round(N(1+r)/2) on. Here the kept band is exactly
k = coreset_size(N, prune_rate) samples: positions floor((N-k)/2) .. floor((N-k)/2)+k-1 of the
ascending ranking (equal scores in index order), so when N-k is odd the hard end loses the
extra sample (the reference's two `round`s can keep k-1 or k+1 and round halves to even).
"""

from __future__ import annotations

import numpy as np

from coreset_lab.registry import register
from coreset_lab.selection.budget import Selector, easy_first


@register("selector")
class Moderate(Selector):
    """The k samples around the median of the ascending score ranking."""

    name = "moderate"

    def select(
        self, scores: np.ndarray, labels: np.ndarray | None, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        low = (scores.shape[0] - k) // 2
        return easy_first(scores)[low : low + k]
