"""The protocol contract: one object per protocol, built from its own config node (`protocol:`).

A protocol says what it is and does: its `name`, what it `provides` the scorer and selector
(the runner refuses `scorer.needs | selector.needs` beyond it with one message), which labels it
reads, its options (typed and checked in its constructor, spelt `protocol.<option>`), its checks
against the scorer, selector, recipe and data, its part of the method identity and its label.
The runner asks these; nothing outside `protocols/` tests a protocol's name.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.registry import declared_name, instantiate, plain_node, registered, target_class

if TYPE_CHECKING:
    from coreset_lab.data.base import DataBundle
    from coreset_lab.scoring.base import ScoreInputs
    from coreset_lab.services.context import RunContext
    from coreset_lab.training.recipe import Recipe

log = logging.getLogger("coreset_lab")

# What a scoring model's training yields to a scorer ("features": the penultimate features'
# squared norm beside the final probabilities).
TRAINED = frozenset({"dynamics", "logits", "probs", "features"})


@dataclass
class Selection:
    coreset: np.ndarray  # sorted int64 indices into the train set
    scores: np.ndarray | None  # float64 [N], higher = harder; None when nothing was scored
    extra: dict = field(default_factory=dict)  # protocol-specific facts for results.json
    # Per-sample [N] arrays for coreset.csv beside index, file and score: the pseudo-label
    # (`cluster`) of a label-free run, the UNSEEN stage that added a sample (`stage`), the BADGE
    # round that bought its label (`round`).
    columns: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """What a protocol's checks may read of the run besides its scorer and selector."""

    seed: int
    evaluate: bool | str  # true, false or auto
    scoring: Recipe  # the recipe of scoring models (trainer + trainer.scoring)
    proxy_epochs: int


@dataclass(frozen=True)
class Labels:
    """What a dataset offers to whatever reads ground truth: train labels, a test split."""

    name: str
    labelled: bool
    has_test: bool

    @classmethod
    def of(cls, data: DataBundle) -> Labels:
        return cls(data.name, data.labelled, data.test is not None)


class Protocol:
    name: ClassVar[str]
    # What the scorer and selector may read (`Scorer.needs`, `Selector.needs`).
    provides: ClassVar[frozenset[str]] = frozenset()
    # False: the protocol reads neither scorer nor selector nor prune rate (method=full).
    selects: ClassVar[bool] = True
    # The selection is made without ground-truth labels (their coreset.csv says so).
    label_free: ClassVar[bool] = False
    # A random selection here reads only the seed and N: the same computation as `random`
    # (UNSEEN's stages and class quotas make its random additions depend on its models).
    random_is_plain: ClassVar[bool] = False

    # --- checks (before any work) ---------------------------------------------------------

    def check(self, scorer, selector, settings: Settings) -> None:
        """Refusals the config alone decides, beyond the generic needs ⊆ provides."""

    def label_reader(self, scorer, selector) -> str | None:
        """What of this run trains on ground-truth train labels (None: nothing does)."""
        return f"protocol={self.name}"

    def test_label_readers(self) -> list[str]:
        """Options of this protocol that need test labels whatever `evaluate` says."""
        return []

    def check_unlabelled(self, dataset: str) -> None:
        """Refusals on a dataset without labels, beyond `label_reader`."""

    def check_data(self, data: DataBundle, scorer, selector, settings: Settings) -> None:
        """Refusals that need the loaded train set (class sizes, sample count)."""

    # --- what it computes -----------------------------------------------------------------

    def trains_scoring_models(self, scorer) -> bool:
        return bool(scorer.needs & TRAINED)

    def identity(self, scorer, selector) -> dict:
        """The protocol's part of the method identity: its options that change the result."""
        return {}

    def selector_identity(self, selector, spec: dict) -> dict:
        """The selector's config as it enters the identity (a protocol may replace a value)."""
        return spec

    def missing_hint(self, missing: set[str]) -> str:
        """What to do when the scorer or selector reads what this protocol does not provide."""
        return "use method=elfs, d2 or prototypicality (protocol=elfs computes embeddings)"

    def label(self, scorer, selector, choices: dict) -> str:
        return f"{self.name}:{supervised_label(scorer, selector)}"

    def __call__(self, ctx: RunContext, scorer, selector) -> Selection:
        raise NotImplementedError


# --- building one -------------------------------------------------------------------------------


def build_protocol(node) -> Protocol:
    """The protocol a config node names. An option that another protocol declares and this one
    does not (`++protocol.folds=2` on a sweep that runs ELFS and UNSEEN jobs) is left out, and
    said; an option no protocol declares is refused here, naming this one's."""
    options = plain_node(node)
    cls = target_class(options)
    own = set(inspect.signature(cls).parameters)
    others = {p for c in registered("protocol").values() for p in inspect.signature(c).parameters}
    extra = sorted(set(options) - own - {"_target_"})
    unknown = [k for k in extra if k not in others]
    if unknown:
        known = ", ".join(f"protocol.{k}" for k in sorted(own)) or "none"
        raise UserError(
            f"protocol={declared_name(cls)} has no option protocol.{unknown[0]} (its options: "
            f"{known})"
        )
    foreign = [k for k in extra if k in others]
    if foreign:
        log.info(
            "protocol=%s takes no %s (another protocol's options): left out",
            declared_name(cls), ", ".join(f"protocol.{k}" for k in foreign),
        )  # fmt: skip
    return instantiate({k: v for k, v in options.items() if k not in foreign}, "protocol")


# --- shared by the protocols -------------------------------------------------------------------


def trained_inputs(ctx: RunContext, scorer, labels, inputs: ScoreInputs) -> ScoreInputs:
    """`inputs` with what a scoring model trained on `labels` (all samples) yields, when the
    scorer reads any of it."""
    if scorer.needs & TRAINED:
        with ctx.stage("train_scoring_model"):
            proxy = ctx.models.scoring_model(labels, record_logits="logits" in scorer.needs)
        inputs.dynamics, inputs.probs = proxy.dynamics, proxy.probs
        inputs.feature_sqnorm = proxy.feature_sqnorm
    return inputs


# --- labels shared by the protocols ------------------------------------------------------------


def topk_suffix(selector) -> str:
    easy = "-easy" if getattr(selector, "keep", "hard") == "easy" else ""
    return easy + ("-balanced" if getattr(selector, "class_balanced", False) else "")


def supervised_label(scorer, selector) -> str:
    """Top-k hard is named after its scorer, CCS over AUM is `ccs`, anything else spelt out."""
    s, t = declared_name(type(scorer)), declared_name(type(selector))
    if t == "random":
        return "random"
    if t == "topk":
        # top-k of random scores is a random coreset, but not the `random` selector's draw
        return ("topk(random)" if s == "random" else s) + topk_suffix(selector)
    if t == "ccs":
        return "ccs" if s == "aum" else f"ccs({s})"
    return f"{t}({s})"
