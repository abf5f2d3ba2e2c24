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

Every model goes through `RunContext.scoring_model`, so it is an artifact of the shared store:
trained once per key, counted in the cost ledger, never retrained on a rerun. `workers` > 1
trains the models of a round (all folds and repeats; the repeats of a stage) in parallel
processes that share the store, then loads them here.

Where the paper is silent the choice is a config option; `conf/protocol/unseen.yaml` lists the
provisional defaults.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from scipy.stats import rankdata

from coreset_lab.errors import UserError
from coreset_lab.protocols.base import Selection
from coreset_lab.protocols.folds import MODES, check_folds, fold_plan, stratified_folds
from coreset_lab.protocols.incremental import (
    SCHEDULES,
    IncrementalResult,
    StageScores,
    incremental_selection,
    stage_sizes,
)
from coreset_lab.scoring.base import ScoreInputs, Scorer, check_choice, check_int, check_real
from coreset_lab.selection.budget import coreset_size
from coreset_lab.services.context import RunContext, ScoringJob, ScoringModel

log = logging.getLogger(__name__)

NORMALIZE = ("none", "rank", "zscore")
LABELS = ("gt", "pseudo")


@dataclass(frozen=True)
class UnseenConfig:
    """The `unseen:` config block (see conf/protocol/unseen.yaml for what each default rests on)."""

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
        check_int(self.folds, "unseen.folds", 2)
        check_choice(self.mode, "unseen.mode", MODES)
        check_choice(self.normalize, "unseen.normalize", NORMALIZE)
        check_int(self.repeats, "unseen.repeats", 1)
        check_choice(self.labels, "unseen.labels", LABELS)
        check_int(self.stages, "unseen.stages", 1)
        check_real(self.initial_fraction, "unseen.initial_fraction", 0.0, 1.0, low_open=True)
        check_choice(self.schedule, "unseen.schedule", SCHEDULES)
        if not isinstance(self.class_aware, (bool, np.bool_)):
            raise UserError(f"unseen.class_aware must be true or false, got {self.class_aware!r}")
        check_int(self.workers, "unseen.workers", 1)
        if not isinstance(self.batched, (bool, np.bool_)):
            raise UserError(f"unseen.batched must be true or false, got {self.batched!r}")
        if self.batched and self.workers > 1:
            raise UserError("set unseen.batched=true or unseen.workers > 1, not both")

    @classmethod
    def from_cfg(cls, node: DictConfig | dict | None) -> UnseenConfig:
        given = {} if node is None else dict(node)
        if isinstance(node, DictConfig):
            given = OmegaConf.to_container(node, resolve=True)
        unknown = sorted(set(given) - {f.name for f in fields(cls)})
        if unknown:
            raise UserError(
                f"unknown unseen option(s) {', '.join(unknown)}; "
                f"known: {', '.join(f.name for f in fields(cls))}"
            )
        return cls(**given)

    def seeds(self, first: int) -> list[int]:
        return [int(first) + r for r in range(self.repeats)]


def check_scorer(scorer: Scorer) -> None:
    """UNSEEN scores with models: a scorer may read their probabilities and dynamics only."""
    if "logits" in scorer.needs:
        raise UserError(
            f"scorer {scorer.name!r} needs the per-epoch logits of the samples it scores, which "
            f"held-out recording does not keep; use it with protocol=fitting"
        )
    other = sorted(set(scorer.needs) - {"probs", "dynamics"})
    if other:
        raise UserError(
            f"scorer {scorer.name!r} reads {', '.join(other)}, not a scoring model's outputs: "
            f"protocol=unseen applies to model-based scorers (margin, entropy, least_confidence, "
            f"el2n_final, el2n, forgetting, aum)"
        )


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
    raise UserError(f"unseen.normalize must be one of {', '.join(NORMALIZE)}; got {how!r}")


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
    ctx: RunContext, labels: np.ndarray, jobs: list[Job], record_heldout: bool, config
) -> list[ScoringModel]:
    """The scoring model of every job, trained where missing: one after the other, as one
    vmapped group (`batched`), or in `workers` processes."""
    built: list[str] = []
    n_built = 0
    if config.batched and len(jobs) > 1:
        group = [
            ScoringJob(labels, j.train, j.seed, j.tag, record_heldout=record_heldout) for j in jobs
        ]
        built = ctx.build_together(group)
        n_built = len(built)
    elif config.workers > 1 and len(jobs) > 1:
        built, n_built = _train_in_processes(ctx, labels, jobs, record_heldout, config.workers)
    models = [
        ctx.scoring_model(
            labels, indices=j.train, record_heldout=record_heldout, seed=j.seed, tag=j.tag
        )
        for j in jobs
    ]
    # Artifacts a worker built were only loaded here: count them as built by this run.
    for key in built:
        if key in ctx.store.reused:
            ctx.store.reused.remove(key)
        ctx.store.built.append(key)
    ctx.ledger.models_built_here += n_built
    return models


_WORKER: dict = {}


def _portable_config(cfg: DictConfig) -> dict:
    """The run's config, resolved in this process (Hydra's resolvers are not available in a
    spawned worker), without the `hydra` node; only the CSV logger survives (W&B runs belong
    to the parent process)."""
    out = {}
    for key in cfg:
        if key == "hydra":
            continue
        try:
            node = cfg[key]
            out[key] = (
                OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
            )
        except Exception:  # an interpolation only the parent can resolve and workers never read
            continue
    loggers = out.get("logger") or {}
    out["logger"] = {k: v for k, v in loggers.items() if k == "csv"}
    return out


def _worker_init(cfg: dict, store: dict, out_dir: str, threads: int, parent: int) -> None:
    _exit_with_parent(parent)
    # Ctrl-C reaches the whole process group: the parent handles it and ends the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch
    from tqdm import tqdm

    from coreset_lab.data import build_dataset
    from coreset_lab.runtime import quiet_third_party
    from coreset_lab.store.artifacts import ArtifactStore

    # tqdm's default lock holds a multiprocessing semaphore, which a terminated worker leaves to
    # the resource tracker (a "leaked semaphore" warning on stderr); a thread lock does here.
    tqdm.set_lock(threading.RLock())
    torch.set_num_threads(threads)
    quiet_third_party()
    conf = OmegaConf.create(cfg)
    data = build_dataset(**conf.dataset)
    _WORKER["ctx"] = RunContext(conf, data, ArtifactStore(**store), Path(out_dir))


def _exit_with_parent(parent: int) -> None:
    """A parent killed outright (OOM killer, SIGKILL) cannot end its workers: they would train on
    as orphans, holding their memory and keeping multiprocessing's resource tracker alive. Once
    the parent is gone the worker is re-parented, so a daemon thread watching getppid() ends it.
    (prctl's PDEATHSIG would be quicker but fires when the spawning *thread* ends, and is Linux
    only.)"""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # a half-built artifact stays in its .partial directory for a rerun

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_train(labels: np.ndarray, job: Job, record_heldout: bool) -> tuple[list[str], int]:
    ctx: RunContext = _WORKER["ctx"]
    before, n_before = len(ctx.store.built), ctx.ledger.models_built_here
    ctx.scoring_model(
        labels, indices=job.train, record_heldout=record_heldout, seed=job.seed, tag=job.tag
    )
    return ctx.store.built[before:], ctx.ledger.models_built_here - n_before


def _train_in_processes(
    ctx: RunContext, labels: np.ndarray, jobs: list[Job], record_heldout: bool, workers: int
) -> tuple[list[str], int]:
    import torch

    n = min(workers, len(jobs))
    threads = max(1, torch.get_num_threads() // n)
    store = ctx.store.settings()
    init = (_portable_config(ctx.cfg), store, str(ctx.out_dir), threads, os.getpid())
    log.info("training %d scoring models in %d processes", len(jobs), n)
    built: list[str] = []
    count = 0
    pool = ProcessPoolExecutor(  # its workers start on submit
        max_workers=n,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=init,
    )
    try:
        with _sigint_blocked():
            futures = [pool.submit(_worker_train, labels, j, record_heldout) for j in jobs]
        for fut in futures:
            keys, k = fut.result()
            built += keys
            count += k
    except BaseException:
        # A failed model, Ctrl-C or SIGTERM: end the other workers now; leaving the pool the
        # usual way would wait for each of them to finish training.
        _terminate(pool)
        raise
    pool.shutdown()
    return built, count


@contextmanager
def _sigint_blocked():
    """SIGINT blocked in this thread; a Ctrl-C meanwhile is delivered at the end, not lost.
    Processes started here inherit the mask, so a Ctrl-C (sent to the whole process group)
    cannot interrupt a worker before its initializer ignores SIGINT."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's workers at once (SIGTERM); what they finished is in the store."""
    processes = list((pool._processes or {}).values())  # no public handle before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    for p in processes:
        p.join(timeout=10)


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
    config: UnseenConfig,
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
    config: UnseenConfig,
    first_seed: int | None = None,
) -> HeldoutScores:
    """K-fold held-out scores of every sample, averaged over folds and repeats."""
    check_scorer(scorer)
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


def unseen(ctx: RunContext, scorer, selector) -> Selection:
    # Ground-truth labels: validate.py refuses unseen.labels=pseudo, which no stage builds yet.
    config = UnseenConfig.from_cfg(ctx.cfg.get("unseen"))
    return unseen_selection(ctx, scorer, selector, ctx.data.train_targets, config)


def unseen_selection(
    ctx: RunContext, scorer, selector, labels: np.ndarray, config: UnseenConfig
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
    start, before = time.perf_counter(), _model_seconds(ctx)
    result = incremental_selection(
        labels, selector, sizes, first, score_stage, rng, class_aware=config.class_aware
    )
    spent = time.perf_counter() - start - (_model_seconds(ctx) - before)
    ctx.ledger.stage_seconds["select"] = ctx.ledger.stage_seconds.get("select", 0.0) + spent
    epochs = ctx.proxy_epochs
    facts.update(_facts(held, stage_records, result, scorer, epochs))
    _save_arrays(ctx.out_dir, held, result)
    stages = {"stage": result.stage_of} if config.stages > 1 else {}  # 1..T, 0 = not kept
    return Selection(result.coreset, held.scores, {"unseen": _jsonable(facts)}, stages)


def _model_seconds(ctx: RunContext) -> float:
    return sum(ctx.ledger.stage_seconds.get(k, 0.0) for k in ("train_scoring_model", "score"))


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
    tmp = out_dir / ".unseen.tmp.npz"
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
