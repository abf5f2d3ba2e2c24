"""UNSEEN (Xu et al., AAAI 2026): score every sample with models that never trained on it.

Held-out scoring. The train set is split into K stratified, seeded folds (`folds.py`).
  mode="fold" (the paper's Figure 3): the model trained on fold k scores the K - 1 other folds,
      so every sample gets K - 1 scores;
  mode="complement": the model trained on every fold but k scores fold k (one score each).
Each scoring model's scores are optionally normalised (rank or z-score over the samples it
scored) and every sample's scores are averaged, over folds and over `repeats` seeds (seed,
seed + 1, ...; each repeat draws its own split). Snapshot scorers (margin, entropy, least
confidence, EL2N of the final model) read the model's eval-mode probabilities of the held-out
samples; dynamics scorers (forgetting, AUM, EL2N) read the eval-mode predictions of the held-out
samples recorded after every epoch (`ScoringModel.heldout`).

Incremental selection (`stages` > 1, `incremental.py`): an initial coreset from the held-out
scores, then per stage a model trained on the current coreset scores the unselected samples and
the best of them are added, until the budget is reached exactly.

The run's scores.npy holds the held-out scores; unseen.npz beside it the fold assignments, the
number of held-out scores per sample and the stage that added each sample.

Every model comes from the model service (`ctx.models`), so it is an artifact of the shared
store: trained once per key, counted in the cost ledger, never retrained on a rerun. `workers` > 1
trains the models of a round (all folds and repeats; the repeats of a stage) in parallel
processes that share the store, `batched` as one vmapped group.

Where the paper is silent the choice is a config option; `conf/protocol/unseen.yaml` lists the
provisional defaults.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy.stats import rankdata

from coreset_lab.errors import UserError
from coreset_lab.files import temp_path
from coreset_lab.protocols.base import Protocol, Selection, topk_suffix
from coreset_lab.protocols.folds import MODES, check_folds, fold_plan, stratified_folds
from coreset_lab.protocols.incremental import (
    SCHEDULES,
    IncrementalResult,
    StageScores,
    incremental_selection,
    stage_sizes,
)
from coreset_lab.registry import declared_name, register
from coreset_lab.scoring.base import ScoreInputs, Scorer
from coreset_lab.selection.budget import coreset_size
from coreset_lab.services.context import RunContext
from coreset_lab.services.models import ScoringJob, ScoringModel
from coreset_lab.training.fast import use_fast_engine
from coreset_lab.values import check_choice, check_int, check_real

log = logging.getLogger(__name__)

NORMALIZE = ("none", "rank", "zscore")
LABELS = ("gt", "pseudo")


# Options that change how fast the models train, not what they compute.
SPEED_ONLY_OPTIONS = frozenset({"workers", "batched"})
# Only the stage schedule reads these; with stages=1 there is no schedule.
STAGED_ONLY_OPTIONS = frozenset({"initial_fraction", "schedule"})
MAX_SEED = 2**32 - 1


@register("protocol")
@dataclass(frozen=True)
class Unseen(Protocol):
    """`protocol=unseen`: options spelt protocol.<option> (see conf/protocol/unseen.yaml for what
    each default rests on)."""

    name: ClassVar[str] = "unseen"
    # Held-out models give probabilities and per-epoch predictions of what they never saw, not
    # per-epoch logits.
    provides: ClassVar[frozenset[str]] = frozenset({"dynamics", "probs"})

    folds: int = 5
    mode: str = "fold"
    normalize: str = "none"
    repeats: int = 1
    labels: str = "gt"
    stages: int = 1
    initial_fraction: float = 0.5
    schedule: str = "linear"
    class_aware: bool = False
    workers: int = 1
    batched: bool = False

    def __post_init__(self) -> None:
        check_int(self.folds, "protocol.folds", 2)
        check_choice(self.mode, "protocol.mode", MODES)
        check_choice(self.normalize, "protocol.normalize", NORMALIZE)
        check_int(self.repeats, "protocol.repeats", 1)
        check_choice(self.labels, "protocol.labels", LABELS)
        check_int(self.stages, "protocol.stages", 1)
        check_real(self.initial_fraction, "protocol.initial_fraction", 0.0, 1.0, low_open=True)
        check_choice(self.schedule, "protocol.schedule", SCHEDULES)
        for key in ("class_aware", "batched"):
            if not isinstance(getattr(self, key), bool | np.bool_):
                raise UserError(f"protocol.{key} must be true or false, got {getattr(self, key)!r}")
        check_int(self.workers, "protocol.workers", 1)
        if self.batched and self.workers > 1:
            raise UserError("set protocol.batched=true or protocol.workers > 1, not both")

    def seeds(self, first: int) -> list[int]:
        return [int(first) + r for r in range(self.repeats)]

    # --- checks ---------------------------------------------------------------------------------

    def missing_hint(self, missing: set[str]) -> str:
        if "logits" in missing:
            return "held-out recording keeps no per-epoch logits: use it with protocol=fitting"
        if "embeddings" in missing:
            return "embeddings come from protocol=elfs (method=elfs, d2 or prototypicality)"
        return (
            "protocol=unseen applies to model-based scorers (margin, entropy, least_confidence, "
            "el2n_final, el2n, forgetting, aum)"
        )

    def check(self, scorer, selector, settings) -> None:
        if not scorer.needs:
            raise UserError(
                f"protocol=unseen scores with models that never saw the sample; scorer "
                f"{scorer.name!r} uses no model, so there is nothing to hold out: use a "
                f"model-based scorer (margin, entropy, el2n, ...) or method=random"
            )
        if self.labels != "gt":
            raise UserError(
                "protocol.labels=pseudo needs pseudo-labels from the label-free (ELFS) stages, "
                "which this protocol does not build yet; use protocol.labels=gt"
            )
        check_int(settings.seed + self.repeats - 1, "seed + protocol.repeats - 1", 0, MAX_SEED)
        scoring = settings.scoring
        if self.batched and scoring.engine == "lightning":
            raise UserError(
                "protocol.batched=true trains the models of a round as one vmapped model on the "
                "fast engine: set trainer.engine=auto or fast (or protocol.batched=false)"
            )
        if self.batched and scoring.on_gpu and scoring.precision in ("bf16-mixed", "auto"):
            # measured on an H200 (outputs/tables/gpu_check): the group trained without error
            # but disagreed with its models alone beyond the bf16 bound (mean p_label gap
            # 0.037 > 0.03; tests/test_gpu.py), so it stays refused until that test passes
            raise UserError(
                "protocol.batched=true cannot train in bf16 on a GPU yet (the vmapped group does "
                "not match its models trained alone): set trainer.precision=32-true or "
                "protocol.batched=false"
            )
        if "dynamics" in scorer.needs and scoring.devices != 1:
            raise UserError(
                f"scorer {scorer.name!r} under protocol=unseen records held-out predictions "
                f"every epoch, which needs a single device: set trainer.devices=1"
            )

    def check_data(self, data, scorer, selector, settings) -> None:
        if self.batched and not use_fast_engine(settings.scoring, data):
            raise UserError(
                "protocol.batched=true needs the fast engine: an in-memory dataset (not an image "
                "folder), trainer.devices=1 and trainer.engine=auto or fast"
            )
        check_folds(self.folds, data.train_targets)
        budget = coreset_size(len(data.train_targets), selector.prune_rate)
        stage_sizes(budget, self.stages, self.initial_fraction, self.schedule)

    # --- identity -------------------------------------------------------------------------------

    def trains_scoring_models(self, scorer) -> bool:
        return True  # a scorer that trains none is refused (check)

    def identity(self, scorer, selector) -> dict:
        drop = SPEED_ONLY_OPTIONS | (STAGED_ONLY_OPTIONS if self.stages == 1 else set())
        return {k: v for k, v in asdict(self).items() if k not in drop}

    def label(self, scorer, selector, choices: dict) -> str:
        """`unseen-s<T>-<scorer>` for top-k hard (the paper's setting); any other selector and
        the non-default switches are appended."""
        name = f"unseen-s{self.stages}-{declared_name(type(scorer))}"
        selector_name = declared_name(type(selector))
        name += topk_suffix(selector) if selector_name == "topk" else f"-{selector_name}"
        if self.mode != "fold":
            name += f"-{self.mode}"
        return name + ("-classaware" if self.class_aware else "")

    def __call__(self, ctx: RunContext, scorer, selector) -> Selection:
        # Ground-truth labels: protocol.labels=pseudo is refused, no stage builds them yet.
        return unseen_selection(ctx, scorer, selector, ctx.data.train_targets, self)


def normalize(scores: np.ndarray, how: str) -> np.ndarray:
    """One model's scores made comparable across models: "rank" maps them to [0, 1] (average
    rank of ties), "zscore" to mean 0 / std 1 (all equal: 0); "none" leaves them as they are."""
    s = np.asarray(scores, dtype=np.float64)
    if how == "none" or s.size == 0:
        return s
    if how == "rank":
        return (rankdata(s, method="average") - 1.0) / max(s.size - 1, 1)
    if how == "zscore":
        std = s.std()
        return (s - s.mean()) / std if std > 0 else np.zeros_like(s)
    raise UserError(f"protocol.normalize must be one of {', '.join(NORMALIZE)}; got {how!r}")


def score_heldout(
    scorer: Scorer, model: ScoringModel, labels: np.ndarray, scored: np.ndarray, seed: int
) -> np.ndarray:
    """The scorer's value on the samples `scored` (which the model never trained on), in order."""
    if "dynamics" in scorer.needs:
        dyn = model.heldout
        if dyn is None:
            raise ValueError("a dynamics scorer needs held-out records (record_heldout=True)")
        inputs = ScoreInputs(
            labels=labels,
            dynamics=dyn,
            probs=model.probs if "probs" in scorer.needs else None,
            seed=seed,
        )
        out = np.asarray(scorer(inputs), dtype=np.float64)[scored]
    else:
        inputs = ScoreInputs(labels=labels[scored], probs=model.probs[scored], seed=seed)
        out = np.asarray(scorer(inputs), dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"scorer {scorer.name!r} left held-out samples unscored (NaN)")
    return out


# --- training the scoring models -------------------------------------------------------------


@dataclass
class Job:
    """One scoring model: what it trains on, what it scores."""

    role: str  # "fold" or "stage"
    round: int  # fold k (0-based) or stage t (1-based)
    seed: int
    train: np.ndarray
    scored: np.ndarray

    @property
    def tag(self) -> str:
        return f"unseen-{self.role}{self.round}-seed{self.seed}"


@dataclass
class ModelRecord:
    """What one scoring model did (for tests, the run's extra facts and the cost table)."""

    role: str
    round: int
    seed: int
    train: np.ndarray
    scored: np.ndarray
    heldout_accuracy: float
    samples_seen: int


def train_jobs(
    ctx: RunContext, labels: np.ndarray, jobs: list[Job], record_heldout: bool, config: Unseen
) -> list[ScoringModel]:
    """The scoring model of every job, from the model service (one after the other, as one
    vmapped group with `batched`, or in `workers` processes)."""
    parallel = "vmap" if config.batched else "processes" if config.workers > 1 else "serial"
    wanted = [
        ScoringJob(labels, j.train, j.seed, j.tag, record_heldout=record_heldout) for j in jobs
    ]
    return ctx.models.get_many(wanted, parallel, config.workers)


# --- held-out scores -------------------------------------------------------------------------


@dataclass
class HeldoutScores:
    scores: np.ndarray  # float64 [N]: mean of the (normalised) held-out scores
    counts: np.ndarray  # int64 [N]: how many scoring models scored each sample
    wrong: np.ndarray  # float64 [N]: fraction of those models that misclassify the sample
    folds: np.ndarray  # int64 [R, N]: the fold of every sample in each repeat
    records: list[ModelRecord]


class _Accumulator:
    def __init__(self, n: int):
        self.total = np.zeros(n)
        self.count = np.zeros(n, dtype=np.int64)
        self.wrong = np.zeros(n)

    def add(self, idx: np.ndarray, scores: np.ndarray, wrong: np.ndarray) -> None:
        self.total[idx] += scores
        self.count[idx] += 1
        self.wrong[idx] += wrong

    def mean(self) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            scored = self.count > 0
            return (
                np.where(scored, self.total / np.maximum(self.count, 1), np.nan),
                np.where(scored, self.wrong / np.maximum(self.count, 1), np.nan),
            )


def _score_models(
    ctx: RunContext,
    scorer: Scorer,
    labels: np.ndarray,
    config: Unseen,
    jobs: list[Job],
    acc: _Accumulator,
) -> list[ModelRecord]:
    needs_dynamics = "dynamics" in scorer.needs
    with ctx.stage("train_scoring_model"):
        models = train_jobs(ctx, labels, jobs, needs_dynamics, config)
    records = []
    with ctx.stage("score"):
        for job, model in zip(jobs, models, strict=True):
            # The invariant the whole protocol rests on.
            assert not np.isin(job.scored, job.train).any(), "a model scores its own samples"
            if model.heldout is not None:
                assert not model.heldout.seen[:, job.train].any(), "held-out records leak"
            raw = score_heldout(scorer, model, labels, job.scored, job.seed)
            wrong = model.probs[job.scored].argmax(1) != labels[job.scored]
            acc.add(job.scored, normalize(raw, config.normalize), wrong)
            records.append(
                ModelRecord(
                    job.role,
                    job.round,
                    job.seed,
                    job.train,
                    job.scored,
                    float(1.0 - wrong.mean()) if wrong.size else float("nan"),
                    int(model.info["samples_seen"]),
                )
            )
    return records


def heldout_scores(
    ctx: RunContext,
    scorer: Scorer,
    labels: np.ndarray,
    config: Unseen,
    first_seed: int | None = None,
) -> HeldoutScores:
    """K-fold held-out scores of every sample, averaged over folds and repeats."""
    labels = np.asarray(labels, dtype=np.int64)
    k = check_folds(config.folds, labels)
    seeds = config.seeds(ctx.seed if first_seed is None else first_seed)
    splits, jobs = [], []
    for seed in seeds:
        assign = stratified_folds(labels, k, seed)
        splits.append(assign)
        for fold in range(k):
            train, scored = fold_plan(assign, fold, config.mode)
            jobs.append(Job("fold", fold, seed, train, scored))
    acc = _Accumulator(labels.shape[0])
    records = _score_models(ctx, scorer, labels, config, jobs, acc)
    scores, wrong = acc.mean()
    return HeldoutScores(scores, acc.count, wrong, np.stack(splits), records)


def class_error(wrong: np.ndarray, labels: np.ndarray, among: np.ndarray | None = None):
    """Mean of `wrong` per class (sorted unique labels) over the samples `among` (all if None);
    0 for a class without any sample there."""
    classes = np.unique(labels)
    mask = (
        np.ones(labels.shape[0], dtype=bool)
        if among is None
        else np.isin(np.arange(labels.shape[0]), among)
    )
    out = np.zeros(classes.size)
    for i, c in enumerate(classes):
        sel = mask & (labels == c)
        if sel.any():
            out[i] = float(np.nanmean(wrong[sel]))
    return out


# --- the protocol ----------------------------------------------------------------------------


def unseen_selection(
    ctx: RunContext, scorer, selector, labels: np.ndarray, config: Unseen
) -> Selection:
    """Held-out scoring + (incremental) selection with the given labels (GT or pseudo)."""
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    check_folds(config.folds, labels)
    sizes = stage_sizes(
        coreset_size(n, selector.prune_rate),
        config.stages,
        config.initial_fraction,
        config.schedule,
    )
    facts = {**asdict(config), "stage_sizes": sizes, "stage_additions": np.diff([0, *sizes])}
    rng = np.random.default_rng(ctx.seed)
    held = heldout_scores(ctx, scorer, labels, config)
    stage_records: list[ModelRecord] = []

    def score_stage(stage: int, coreset: np.ndarray) -> StageScores:
        pool = np.setdiff1d(np.arange(n), coreset)
        jobs = [Job("stage", stage, seed, coreset, pool) for seed in config.seeds(ctx.seed)]
        acc = _Accumulator(n)
        stage_records.extend(_score_models(ctx, scorer, labels, config, jobs, acc))
        scores, wrong = acc.mean()
        return StageScores(scores, class_error(wrong, labels, pool))

    first = StageScores(held.scores, class_error(held.wrong, labels))
    # Stage models time themselves (train_scoring_model, score); "select" gets the rest.
    with ctx.stage("select"):
        result = incremental_selection(
            labels, selector, sizes, first, score_stage, rng, class_aware=config.class_aware
        )
    epochs = ctx.models.proxy_epochs
    facts.update(_facts(held, stage_records, result, scorer, epochs))
    _save_arrays(ctx.out_dir, held, result)
    stages = {"stage": result.stage_of} if config.stages > 1 else {}  # 1..T, 0 = not kept
    return Selection(result.coreset, held.scores, {"unseen": _jsonable(facts)}, stages)


def _facts(
    held: HeldoutScores,
    stage_records: list[ModelRecord],
    result: IncrementalResult,
    scorer: Scorer,
    epochs: int,
) -> dict:
    fold_records = held.records
    n = held.scores.shape[0]
    predicted = 0.0
    if "dynamics" in scorer.needs:  # held-out forward passes every epoch, beyond training
        predicted = sum(int(r.scored.size) for r in fold_records + stage_records) * epochs / n
    facts = {
        "fold_models": len(fold_records),
        "stage_models": len(stage_records),
        "scores_per_sample": [int(held.counts.min()), int(held.counts.max())],
        "fold_heldout_accuracy": [round(r.heldout_accuracy, 4) for r in fold_records],
        "stage_heldout_accuracy": [round(r.heldout_accuracy, 4) for r in stage_records],
        "fold_samples_seen": int(sum(r.samples_seen for r in fold_records)),
        "stage_samples_seen": int(sum(r.samples_seen for r in stage_records)),
        # eval-mode forward passes over held-out samples while training (dynamics scorers),
        # in the ledger's unit (passes over the train set); not in cost.sample_epochs
        "heldout_forward_sample_epochs": round(predicted, 3),
    }
    if result.quotas:
        facts["class_quotas"] = result.quotas
    return facts


def _save_arrays(out_dir: Path, held: HeldoutScores, result: IncrementalResult) -> None:
    """Fold assignments, per-sample held-out score counts and the stage that added each sample
    (0 = not selected), beside the run's scores.npy and coreset.npy."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(out_dir / "unseen.npz", ".npz")
    with open(tmp, "wb") as fh:
        np.savez(
            fh,
            folds=held.folds,
            heldout_scores=held.scores,
            heldout_counts=held.counts,
            heldout_wrong=held.wrong,
            stage_of=result.stage_of,
        )
    os.replace(tmp, out_dir / "unseen.npz")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
