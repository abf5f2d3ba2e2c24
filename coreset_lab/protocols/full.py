"""The no-pruning reference: the coreset is the whole train set."""

from __future__ import annotations

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.protocols.base import Protocol, Selection
from coreset_lab.registry import register


@register("protocol")
class Full(Protocol):
    name = "full"
    selects = False  # reads neither scorer nor selector nor prune rate

    def check(self, scorer, selector, settings) -> None:
        if settings.evaluate is False:
            raise UserError("method=full selects nothing: evaluate=false would leave nothing to do")

    def label_reader(self, scorer, selector) -> str | None:
        return "method=full"

    def test_label_readers(self) -> list[str]:
        return ["method=full"]

    def trains_scoring_models(self, scorer) -> bool:
        return False

    def label(self, scorer, selector, choices: dict) -> str:
        return "full"

    def __call__(self, ctx, scorer, selector) -> Selection:
        return Selection(coreset=np.arange(len(ctx.data.train), dtype=np.int64), scores=None)
