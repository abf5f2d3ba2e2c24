"""The standard ("fitting") protocol: score every sample with a model trained on all of them,
using ground-truth labels, then select."""

from __future__ import annotations

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.protocols.base import (
    TRAINED,
    Protocol,
    Selection,
    supervised_label,
    trained_inputs,
)
from coreset_lab.registry import declared_name, register
from coreset_lab.scoring import ScoreInputs
from coreset_lab.selection.budget import coreset_size


def random_selection(selector) -> bool:
    """The `random` selector reads only the seed and N: the same draw under any protocol that
    passes it through unchanged (fitting, elfs), whatever the scorer computed beside it."""
    return declared_name(type(selector)) == "random"


def reads_nothing(scorer, selector) -> bool:
    """A random selection reads only the seed and N: the same draw under any protocol that
    passes it through unchanged (fitting, elfs)."""
    return not scorer.needs and declared_name(type(selector)) == "random"


@register("protocol")
class Fitting(Protocol):
    name = "fitting"
    provides = TRAINED
    random_is_plain = True

    def label_reader(self, scorer, selector) -> str | None:
        if reads_nothing(scorer, selector):
            return None  # method=random: it may run on an unlabelled pool
        return super().label_reader(scorer, selector)

    def check_data(self, data, scorer, selector, settings) -> None:
        if not getattr(selector, "class_balanced", False):
            return
        budget = coreset_size(len(data.train), selector.prune_rate)
        if budget < data.num_classes:
            raise UserError(
                f"selector.class_balanced=true needs at least one sample per class: the budget "
                f"of {budget} (from selector.prune_rate) is smaller than the {data.num_classes} "
                f"classes; lower selector.prune_rate or set selector.class_balanced=false"
            )

    def label(self, scorer, selector, choices: dict) -> str:
        return supervised_label(scorer, selector)

    def __call__(self, ctx, scorer, selector) -> Selection:
        # An unlabelled pool gets here only for method=random, which reads no label.
        labels = ctx.data.train_targets if ctx.data.labelled else None
        inputs = ScoreInputs(labels=labels, seed=ctx.seed, size=len(ctx.data.train))
        inputs = trained_inputs(ctx, scorer, labels, inputs)
        with ctx.stage("score"):
            scores = np.asarray(scorer(inputs), dtype=np.float64)
        with ctx.stage("select"):
            coreset = selector(scores, labels, np.random.default_rng(ctx.seed))
        return Selection(coreset=coreset, scores=scores)
