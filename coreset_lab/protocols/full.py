"""The no-pruning reference: the coreset is the whole train set."""

from __future__ import annotations

import numpy as np

from coreset_lab.protocols.base import Selection
from coreset_lab.services.context import RunContext


def full(ctx: RunContext, scorer, selector) -> Selection:
    return Selection(coreset=np.arange(len(ctx.data.train), dtype=np.int64), scores=None)
