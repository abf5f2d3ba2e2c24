"""ELFS (Zheng et al., ICLR 2025): label-free coreset selection with proxy training dynamics.

embeddings (frozen or self-trained SSL encoder) -> clustering -> pseudo-labels -> proxy model
trained on pseudo-labels (dynamics recorded) -> difficulty scores against pseudo-labels ->
double-end selection (drop the β·N hardest, keep the next (1-p)·N), β chosen without labels when
`elfs.beta_search` is on. The label-free baselines (prototypicality, D2, random) run through the
same protocol on the same embeddings with their own scorer / selector.

Nothing here reads a ground-truth label to choose anything: the only reads are the
cluster-quality report, computed after the selection, and two opt-in DIAGNOSTICS that say so:
`clustering=oracle` (pseudo-labels = the ground truth with noise: it does choose with labels, and
the run's log and `clustering.reads_ground_truth` say it) and `elfs.beta_truth` (the test
accuracy of every β of the grid, computed after everything was chosen, reported only).
"""

from __future__ import annotations

import numpy as np

from coreset_lab.clustering import reads_labels
from coreset_lab.protocols.base import Selection
from coreset_lab.protocols.beta_search import at_grid_edge, save_curve, search_beta, truth_curve
from coreset_lab.protocols.fitting import TRAINED
from coreset_lab.protocols.label_free import (
    embeddings,
    pseudo_class_count,
    pseudo_labels,
    quality_report,
)
from coreset_lab.scoring import ScoreInputs
from coreset_lab.selection import DoubleEnd
from coreset_lab.services.context import RunContext


def _score(ctx: RunContext, scorer, pseudo: np.ndarray, emb: np.ndarray) -> np.ndarray:
    inputs = ScoreInputs(labels=pseudo, seed=ctx.seed, embeddings=emb)
    if scorer.needs & TRAINED:
        with ctx.stage("train_scoring_model"):
            proxy = ctx.scoring_model(pseudo, record_logits="logits" in scorer.needs)
        inputs.dynamics, inputs.probs = proxy.dynamics, proxy.probs
    with ctx.stage("score"):
        return np.asarray(scorer(inputs), dtype=np.float64)


def elfs(ctx: RunContext, scorer, selector) -> Selection:
    search = isinstance(selector, DoubleEnd) and bool(ctx.cfg.elfs.beta_search)
    # Proxy and β trials learn the k pseudo-classes, whatever the class count (a pool has none).
    pseudo_ctx = ctx.with_classes(pseudo_class_count(ctx.cfg.clustering, ctx.data))
    check_beta_truth = bool(ctx.cfg.elfs.get("beta_truth", False)) and search  # see validate.py
    oracle = reads_labels(ctx.cfg.clustering)
    # The oracle reads labels, not embeddings: none are computed unless a stage needs them.
    if oracle and "embeddings" not in scorer.needs and not selector.needs_embeddings:
        emb, emb_key = None, None
    else:
        emb, emb_key = embeddings(ctx)
    pseudo, cluster_info = pseudo_labels(ctx, emb, emb_key)
    scores = _score(pseudo_ctx, scorer, pseudo, emb)
    extra: dict = {
        "encoder": ctx.cfg.encoder.get("kind"),
        "clustering": {**cluster_info, "reads_ground_truth": oracle},
    }
    curve = None
    if search:
        with ctx.stage("beta_search"):
            curve = search_beta(pseudo_ctx, pseudo, scores)
        selector = DoubleEnd(selector.prune_rate, curve.best)
        extra["beta_search"] = {"beta": curve.betas, "accuracy": curve.accuracies}
        extra["beta_at_grid_edge"] = at_grid_edge(curve.betas, curve.best, selector.prune_rate)
    if isinstance(selector, DoubleEnd):
        extra["beta"] = selector.beta
    with ctx.stage("select"):
        kwargs = {"embeddings": emb} if selector.needs_embeddings else {}
        coreset = selector(scores, pseudo, np.random.default_rng(ctx.seed), **kwargs)
    # Reported only, after everything was chosen.
    truth = None
    if check_beta_truth:
        with ctx.stage("beta_truth"):
            truth = truth_curve(ctx, scores, pseudo, curve.betas, curve.best)
        extra["beta_truth"] = truth.as_result()
    if curve is not None:
        save_curve(curve, ctx.out_dir, selector.prune_rate, truth)
    extra["pseudo_label_quality"] = (  # an unlabelled pool has nothing to compare with
        quality_report(pseudo, ctx.data.train_targets, cluster_info) if ctx.data.labelled else None
    )
    return Selection(coreset, scores, extra, columns={"cluster": pseudo})
