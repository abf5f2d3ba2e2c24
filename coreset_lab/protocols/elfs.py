"""ELFS (Zheng et al., ICLR 2025): label-free coreset selection with proxy training dynamics.

embeddings (frozen or self-trained SSL encoder) -> clustering -> pseudo-labels -> proxy model
trained on pseudo-labels (dynamics recorded) -> difficulty scores against pseudo-labels ->
double-end selection (drop the β·N hardest, keep the next (1-p)·N), β chosen without labels when
`protocol.beta_search` is on. The label-free baselines (prototypicality, D2, random) run through
the same protocol on the same embeddings with their own scorer / selector.

Nothing here reads a ground-truth label to choose anything: the only reads are the
cluster-quality report, computed after the selection, and two opt-in DIAGNOSTICS that say so:
`clustering=oracle` (pseudo-labels = the ground truth with noise: it does choose with labels, and
the run's log and `clustering.reads_ground_truth` say it) and `protocol.beta_truth` (the test
accuracy of every β of the grid, computed after everything was chosen, reported only).
"""

from __future__ import annotations

import numpy as np
from omegaconf import OmegaConf

from coreset_lab.clustering import parse_config, reads_labels
from coreset_lab.clustering.options import check_num_clusters
from coreset_lab.embedding import check_encoder
from coreset_lab.errors import UserError
from coreset_lab.protocols.base import (
    TRAINED,
    Protocol,
    Selection,
    supervised_label,
    topk_suffix,
    trained_inputs,
)
from coreset_lab.protocols.beta_search import (
    at_grid_edge,
    holdout_split,
    save_curve,
    search_beta,
    truth_curve,
)
from coreset_lab.protocols.label_free import (
    embeddings,
    encoder_fields,
    plain,
    pseudo_class_count,
    pseudo_labels,
    quality_report,
)
from coreset_lab.registry import declared_name, register
from coreset_lab.scoring import ScoreInputs
from coreset_lab.selection import DoubleEnd
from coreset_lab.values import check_int, check_real

# Clustering options that decide where it runs, not what it computes.
CLUSTERING_PLACEMENT = frozenset({"accelerator"})
# The label-free methods of the ELFS paper: (selector, scorer of the paper's version) -> name.
# k-center greedy reads no score: its paper version pairs it with `random`, which trains nothing.
PAPER_METHODS = {
    "double_end": ("elfs", "aum"),
    "d2": ("d2", "prototypicality"),
    "kcenter": ("kcenter", "random"),
    "moderate": ("moderate", "median_distance"),
}


def _bool(value, key: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{key} must be true or false, got {value!r}")
    return value


@register("protocol")
class Elfs(Protocol):
    """`protocol=elfs`: the encoder and clustering are injected from their own groups."""

    name = "elfs"
    provides = TRAINED | {"embeddings"}
    label_free = True
    random_is_plain = True

    def __init__(
        self,
        encoder,
        clustering,
        beta_search: bool = True,
        beta_grid=(0.0, 0.1, 0.2, 0.3, 0.4),
        holdout_fraction: float = 0.1,
        search_iterations: int | None = None,
        beta_truth: bool = False,
    ):
        self.encoder, self.clustering = plain(encoder), plain(clustering)
        self.beta_search = _bool(beta_search, "protocol.beta_search")
        grid = plain(beta_grid) if OmegaConf.is_config(beta_grid) else beta_grid
        grid = list(grid) if isinstance(grid, tuple) else grid
        if not isinstance(grid, list) or not grid:
            raise UserError(
                f"protocol.beta_grid must be a non-empty list of β values, got {grid!r}"
            )
        self.beta_grid = [
            check_real(b, "protocol.beta_grid", 0.0, 1.0, high_open=True) for b in grid
        ]
        self.holdout_fraction = check_real(
            holdout_fraction, "protocol.holdout_fraction", 0.0, 1.0, low_open=True, high_open=True
        )
        if search_iterations is not None:
            check_int(search_iterations, "protocol.search_iterations", 1)
        self.search_iterations = search_iterations
        self.beta_truth = _bool(beta_truth, "protocol.beta_truth")

    def searches(self, selector) -> bool:
        """β is searched only for a double-end selection (the only selector with a β)."""
        return self.beta_search and isinstance(selector, DoubleEnd)

    @property
    def oracle(self) -> bool:
        return reads_labels(self.clustering)

    # --- checks ---------------------------------------------------------------------------------

    def missing_hint(self, missing: set[str]) -> str:
        return "no stage of protocol=elfs computes it"

    def check(self, scorer, selector, settings) -> None:
        check_encoder(self.encoder)
        parse_config(self.clustering)  # method, options and values of kmeans, temi and oracle
        search = self.searches(selector)
        if self.beta_truth and not (search and settings.evaluate is not False):
            raise UserError(
                "protocol.beta_truth=true checks the label-free β search against test labels: it "
                "needs selector=double_end, protocol.beta_search=true and evaluate=true (or auto)"
            )
        if search and min(self.beta_grid) > selector.prune_rate:
            raise UserError(
                f"protocol.beta_grid has no β ≤ selector.prune_rate={selector.prune_rate}"
            )

    def label_reader(self, scorer, selector) -> str | None:
        return None  # the oracle reads labels, refused on a pool by check_unlabelled

    def test_label_readers(self) -> list[str]:
        return ["protocol.beta_truth=true"] if self.beta_truth else []

    def check_unlabelled(self, dataset: str) -> None:
        if self.oracle:
            raise UserError(
                f"clustering={self.clustering.get('method')} reads ground-truth labels, and "
                f"dataset {dataset} has none: use clustering=kmeans or temi"
            )
        if not self.clustering.get("num_clusters"):
            raise UserError(
                f"dataset {dataset} has no labels, so no class count for the pseudo-labels: set "
                f"clustering.num_clusters=K (the number of kinds of images you expect)"
            )

    def check_data(self, data, scorer, selector, settings) -> None:
        from coreset_lab.embedding.precomputed import locate

        n = len(data.train)
        k = pseudo_class_count(self.clustering, data)  # num_clusters on a pool: check_unlabelled
        check_num_clusters(k, n)
        if getattr(scorer, "num_clusters", None) is not None:
            check_int(scorer.num_clusters, "scorer.num_clusters", 1, n)
        if self.encoder.get("kind") == "precomputed":
            locate(self.encoder, data)  # one row per train sample, found before any work

    # --- identity -------------------------------------------------------------------------------

    def identity(self, scorer, selector) -> dict:
        out = {
            "encoder": encoder_fields(self.encoder, file_names=True),
            "clustering": {
                k: v for k, v in self.clustering.items() if k not in CLUSTERING_PLACEMENT
            },
        }
        if declared_name(type(selector)) != "double_end":
            return out
        if not self.beta_search:
            return {**out, "beta_search": False}  # names the switch when the report compares
        search = ("beta_search", "beta_grid", "holdout_fraction", "search_iterations")
        return {**out, **{k: getattr(self, k) for k in search}}  # beta_truth: report-only

    def selector_identity(self, selector, spec: dict) -> dict:
        if self.searches(selector):
            return {k: v for k, v in spec.items() if k != "beta"}  # the search replaces it
        return spec

    def label(self, scorer, selector, choices: dict) -> str:
        """`name[encoder]`: options go before the bracket, so the paper lookup (which strips the
        bracket) never matches a variant that is not the paper's method."""
        s, t = declared_name(type(scorer)), declared_name(type(selector))
        if t in PAPER_METHODS:
            name, paper_scorer = PAPER_METHODS[t]
            base = name if s == paper_scorer else f"{name}({s})"
        elif t == "topk" and s == "prototypicality":
            base = "prototypicality" + topk_suffix(selector)
        else:  # a supervised recipe run on pseudo-labels: not the supervised method of that name
            base = "lf-" + supervised_label(scorer, selector)
        if self.oracle:  # a diagnostic that reads ground-truth labels
            noise = self.clustering.get("noise", 0.0)
            base += f"-oracle{noise:g}" if isinstance(noise, int | float) else f"-oracle{noise}"
        encoder = choices.get("encoder") or self.encoder.get("name") or self.encoder.get("kind")
        return f"{base}[{encoder or '?'}]"

    # --- the run --------------------------------------------------------------------------------

    def __call__(self, ctx, scorer, selector) -> Selection:
        search = self.searches(selector)
        # Proxy and β trials learn the k pseudo-classes, whatever the class count (a pool has none).
        pseudo_ctx = ctx.with_classes(pseudo_class_count(self.clustering, ctx.data))
        # The oracle reads labels, not embeddings: none are computed unless a stage needs them.
        if self.oracle and "embeddings" not in scorer.needs and "embeddings" not in selector.needs:
            emb, emb_key = None, None
        else:
            emb, emb_key = embeddings(ctx, self.encoder)
        pseudo, cluster_info = pseudo_labels(ctx, self.clustering, emb, emb_key)
        if search:  # an empty pool or held-out part is refused before the proxy trains
            holdout_split(pseudo, self.holdout_fraction, ctx.seed)
        scores = _score(pseudo_ctx, scorer, pseudo, emb)
        extra: dict = {
            "encoder": self.encoder.get("kind"),
            "clustering": {**cluster_info, "reads_ground_truth": self.oracle},
        }
        curve = None
        if search:
            iterations = self.search_iterations or ctx.models.target_budget.iterations
            with ctx.stage("beta_search"):
                curve = search_beta(
                    pseudo_ctx, pseudo, scores, self.beta_grid, selector.prune_rate,
                    self.holdout_fraction, int(iterations),
                )  # fmt: skip
            selector = DoubleEnd(selector.prune_rate, curve.best)
            extra["beta_search"] = {"beta": curve.betas, "accuracy": curve.accuracies}
            extra["beta_at_grid_edge"] = at_grid_edge(curve.betas, curve.best, selector.prune_rate)
        if isinstance(selector, DoubleEnd):
            extra["beta"] = selector.beta
        with ctx.stage("select"):
            kwargs = {"embeddings": emb} if "embeddings" in selector.needs else {}
            coreset = selector(scores, pseudo, np.random.default_rng(ctx.seed), **kwargs)
        # Reported only, after everything was chosen.
        truth = None
        if self.beta_truth and search:
            with ctx.stage("beta_truth"):
                truth = truth_curve(
                    ctx, scores, pseudo, curve.betas, curve.best, selector.prune_rate
                )
            extra["beta_truth"] = truth.as_result()
        if curve is not None:
            save_curve(curve, ctx.out_dir, selector.prune_rate, truth)
        extra["pseudo_label_quality"] = (  # an unlabelled pool has nothing to compare with
            quality_report(pseudo, ctx.data.train_targets, cluster_info)
            if ctx.data.labelled
            else None
        )
        return Selection(coreset, scores, extra, columns={"cluster": pseudo})


def _score(ctx, scorer, pseudo: np.ndarray, emb: np.ndarray) -> np.ndarray:
    inputs = ScoreInputs(labels=pseudo, seed=ctx.seed, embeddings=emb)
    inputs = trained_inputs(ctx, scorer, pseudo, inputs)
    with ctx.stage("score"):
        return np.asarray(scorer(inputs), dtype=np.float64)
