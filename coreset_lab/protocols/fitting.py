"""The standard ("fitting") protocol: score every sample with a model trained on all of them,
using ground-truth labels, then select."""

from __future__ import annotations

import numpy as np

from coreset_lab.protocols.base import Selection
from coreset_lab.scoring import ScoreInputs
from coreset_lab.services.context import RunContext

TRAINED = {"dynamics", "logits", "probs"}


def fitting(ctx: RunContext, scorer, selector) -> Selection:
    # An unlabelled pool gets here only for method=random, which reads no label (validate.py).
    labels = ctx.data.train_targets if ctx.data.labelled else None
    inputs = ScoreInputs(labels=labels, seed=ctx.seed, size=len(ctx.data.train))
    if scorer.needs & TRAINED:
        with ctx.stage("train_scoring_model"):
            proxy = ctx.scoring_model(labels, record_logits="logits" in scorer.needs)
        inputs.dynamics, inputs.probs = proxy.dynamics, proxy.probs
    with ctx.stage("score"):
        scores = np.asarray(scorer(inputs), dtype=np.float64)
    with ctx.stage("select"):
        coreset = selector(scores, labels, np.random.default_rng(ctx.seed))
    return Selection(coreset=coreset, scores=scores)
