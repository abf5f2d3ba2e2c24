"""What every protocol needs: the data, the recipe, the artifact store, timers and the cost ledger.

A protocol asks for *scoring models* (trained on some labels and some subset, recording dynamics);
the context trains each one once per artifact key and counts what it cost.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from coreset_lab.data.base import DataBundle
from coreset_lab.dynamics import Dynamics
from coreset_lab.errors import UserError
from coreset_lab.models import build_model
from coreset_lab.speed_only import SPEED_ONLY
from coreset_lab.store.artifacts import SCRATCH, ArtifactStore, digest
from coreset_lab.store.fingerprint import (
    data_fingerprint,
    runtime_fingerprint,
    with_file_fingerprints,
)
from coreset_lab.training.budget import Budget
from coreset_lab.training.fast import Plan, train_models, use_fast_engine
from coreset_lab.training.fit import train_classifier
from coreset_lab.training.predict import predict_probs
from coreset_lab.training.recipe import Recipe

log = logging.getLogger(__name__)

# What a model learns does not depend on these; the device and precision do, and enter every key
# resolved (`training_spec`, the store's environment).
_NOT_IN_KEY = SPEED_ONLY | {"precision"}


@dataclass
class ScoringModel:
    dynamics: Dynamics  # of the samples it trained on (train mode, augmented)
    probs: np.ndarray  # [N, C] softmax on un-augmented train inputs (all of them), eval mode
    info: dict
    heldout: Dynamics | None = None  # per-epoch eval-mode records of the samples it never saw


@dataclass
class ScoringJob:
    """A scoring model to have: trained on `labels` over `indices` (all samples if None)."""

    labels: np.ndarray
    indices: np.ndarray | None = None
    seed: int = 0
    tag: str = "proxy"
    record_logits: bool = False
    record_heldout: bool = False


@dataclass
class Ledger:
    """Cost of a run: models its method needed (cached or not) and samples they trained on."""

    n_train: int
    models: int = 0
    models_built_here: int = 0
    samples_seen: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def used(self, samples_seen: int) -> None:
        """A model the method needed, whether trained now or reused from the store."""
        self.models += 1
        self.samples_seen += samples_seen

    def as_dict(self) -> dict:
        return {
            "models_trained": self.models,
            "models_built_this_run": self.models_built_here,
            "sample_epochs": round(self.samples_seen / self.n_train, 3),
            "samples_seen": self.samples_seen,
        }


def scoring_recipe(trainer_cfg) -> tuple[Recipe, int]:
    """The recipe and epoch count of scoring models (proxy, fold, stage): the trainer's, with the
    overrides of `trainer.scoring` (trainer=fast sets them), and never label smoothing."""
    trainer = OmegaConf.to_container(OmegaConf.create(trainer_cfg), resolve=True)
    overrides = {k: v for k, v in (trainer.pop("scoring", None) or {}).items() if v is not None}
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UserError(
            f"unknown trainer.scoring option(s) {', '.join(unknown)}; it takes the trainer's "
            f"own options (batch_size, lr, warmup_fraction, engine, ...)"
        )
    merged = {**trainer, **overrides}
    epochs = merged.get("proxy_epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise UserError(f"trainer.proxy_epochs must be a positive integer, got {epochs!r}")
    return Recipe.from_config(merged).for_scoring(), epochs


CACHE_MODES = (True, False, "refresh")
FILE_IDENTITY = ("sampled", "full")


def open_store(cfg: DictConfig, started: float) -> ArtifactStore:
    """The run's artifact store: `cache` true (reuse), false (a private store removed at the
    end) or refresh (rebuild whatever the run needs that was finished before `started`). Every
    key carries the device the trainer resolves to and the library versions."""
    cache = cfg.get("cache", True)
    if cache not in CACHE_MODES:
        raise UserError(f"cache must be true, false or refresh, got {cache!r}")
    environment = runtime_fingerprint(Recipe.from_config(cfg.trainer).device)
    root = cfg.paths.store_dir if cache else None
    return ArtifactStore(root, environment, refresh_since=started if cache == "refresh" else None)


class RunContext:
    def __init__(self, cfg: DictConfig, data: DataBundle, store: ArtifactStore, out_dir: Path):
        self.cfg = cfg
        self.data = data
        self.store = store
        self.out_dir = out_dir
        self.seed = int(cfg.seed)
        self.recipe = Recipe.from_config(cfg.trainer)  # target models and β trials
        self.scoring_recipe, self.proxy_epochs = scoring_recipe(cfg.trainer)
        self.ledger = Ledger(n_train=len(data.train))
        identity = cfg.get("file_identity", "sampled")
        if identity not in FILE_IDENTITY:
            raise UserError(f"file_identity must be sampled or full, got {identity!r}")
        self.full_file_hash = identity == "full"
        self.data_id = data_fingerprint(data, self.full_file_hash)

    def with_classes(self, k: int) -> RunContext:
        """This context with models of k output classes (the ELFS proxy and β trials learn k
        pseudo-classes); it shares the store, ledger and timers. The labels are untouched."""
        if k == self.data.num_classes:
            return self
        other = copy.copy(self)
        other.data = dataclasses.replace(self.data, num_classes=k)
        return other

    def config_spec(self, node) -> dict:
        """A config node as it enters a key: resolved, with the identity of every weights file
        it names (replacing a file under the same path changes the key)."""
        plain = OmegaConf.to_container(node, resolve=True) if node is not None else {}
        return with_file_fingerprints(plain, self.full_file_hash)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            self.ledger.stage_seconds[name] = self.ledger.stage_seconds.get(name, 0.0) + spent

    def new_model(self, seed: int):
        """A fresh model whose initial weights depend on the seed alone, not on what the
        process ran before (so workers, reruns and resumed runs agree)."""
        torch.manual_seed(seed)
        d = self.data
        kwargs = self.cfg.model.get("kwargs")
        kwargs = OmegaConf.to_container(kwargs, resolve=True) if kwargs else {}
        return build_model(
            self.cfg.model.arch, d.num_classes, d.in_channels, d.image_size, **kwargs
        )

    def loggers(self, name: str):
        """Lightning loggers for one training: a CSV directory per training, and for W&B the
        job's single run with this training's metric prefix (see tracking.py)."""
        entries = self.cfg.get("logger") or {}
        loggers = [
            instantiate(entry, **({"prefix": name} if key == "wandb" else {"name": name}))
            for key, entry in entries.items()
            if isinstance(entry, DictConfig) and "_target_" in entry
        ]
        for logger in loggers:
            if hasattr(logger, "LOGGER_JOIN_CHAR"):  # W&B: `proxy/train_loss`, a panel section
                logger.LOGGER_JOIN_CHAR = "/"  # per training, not Lightning's `proxy-train_loss`
        return loggers

    def training_spec(self, recipe: Recipe | None = None) -> dict:
        """What determines a trained model besides its labels, subset, budget and seed."""
        recipe = self.recipe if recipe is None else recipe
        return {
            "dataset": self.config_spec(self.cfg.dataset),
            "data": self.data_id,
            "num_classes": self.data.num_classes,  # the model's outputs
            "model": self.config_spec(self.cfg.model),
            "recipe": {k: v for k, v in vars(recipe).items() if k not in _NOT_IN_KEY},
            "device": recipe.device.type,
            "precision": recipe.resolved_precision(),
        }

    def scoring_model(
        self,
        labels: np.ndarray,
        *,
        indices: np.ndarray | None = None,
        record_logits: bool = False,
        record_heldout: bool = False,
        seed: int | None = None,
        tag: str = "proxy",
    ) -> ScoringModel:
        """A model trained on ``labels`` over ``indices`` (all samples if None), once per key."""
        seed = self.seed if seed is None else seed
        job = ScoringJob(labels, indices, seed, tag, record_logits, record_heldout)

        def build(path: Path) -> None:
            fit = train_classifier(
                self.new_model(seed),
                self.data,
                labels,
                self.scoring_recipe,
                Budget(epochs=self.proxy_epochs),
                indices=indices,
                seed=seed,
                record=True,
                record_logits=record_logits,
                record_heldout=record_heldout,
                logger=self.loggers(tag),
                checkpoint_dir=path / SCRATCH,
                name=tag,
            )
            self._save_scoring_model(path, fit)
            self.ledger.models_built_here += 1

        path = self.store.get_or_build("scoring_model", self._scoring_spec(job), build)
        info = json.loads((path / "info.json").read_text())
        self.ledger.used(info["samples_seen"])
        heldout = path / "heldout.npz"
        return ScoringModel(
            Dynamics.load(path / "dynamics.npz"),
            np.load(path / "probs.npy"),
            info,
            Dynamics.load(heldout) if heldout.exists() else None,
        )

    def build_together(self, jobs: list[ScoringJob]) -> list[str]:
        """Train the scoring models of `jobs` that the store lacks as one vmapped group (the fast
        engine's `StackedStepper`) and store each under its own key; returns the keys built.
        `scoring_model` then finds them. All jobs must share their labels and recording.

        The group is trained under one lock named after all its jobs, so processes racing for
        the same round (a sweep over prune rates shares fold models) train it once: the others
        wait, then find every model stored."""
        specs = [self._scoring_spec(j) for j in jobs]
        group = self.store.root / "scoring_model" / f".group-{digest(specs)}"
        group.parent.mkdir(parents=True, exist_ok=True)
        with self.store.lock(group, f"a group of {len(jobs)} scoring models"):
            todo = [i for i, spec in enumerate(specs) if not self.store.has("scoring_model", spec)]
            if len(todo) < 2:
                return []
            return self._train_group([jobs[i] for i in todo], [specs[i] for i in todo], group)

    def _train_group(self, jobs: list[ScoringJob], specs: list[dict], scratch: Path) -> list[str]:
        if not use_fast_engine(self.scoring_recipe, self.data):
            raise UserError(
                "training scoring models together needs the fast engine: an in-memory dataset "
                "and trainer.engine=auto or fast"
            )
        log.info("training %d scoring models together as one vmapped group", len(jobs))
        everything = np.arange(len(self.data.train))
        first = jobs[0]
        plans = [
            Plan(
                self.new_model(j.seed),
                everything if j.indices is None else j.indices,
                j.seed,
                self.loggers(j.tag),
                j.tag,
            )
            for j in jobs
        ]
        fits = train_models(
            plans,
            self.data,
            first.labels,
            self.scoring_recipe,
            Budget(epochs=self.proxy_epochs),
            record=True,
            record_logits=first.record_logits,
            record_heldout=first.record_heldout,
            checkpoint_dir=scratch,
        )
        built = []
        for spec, fit in zip(specs, fits, strict=True):
            before = len(self.store.built)
            self.store.get_or_build(
                "scoring_model", spec, lambda path, fit=fit: self._save_scoring_model(path, fit)
            )
            built += self.store.built[before:]
            del self.store.built[before:]
        shutil.rmtree(scratch, ignore_errors=True)
        return built

    def _scoring_spec(self, job: ScoringJob) -> dict:
        return {
            **self.training_spec(self.scoring_recipe),
            "epochs": self.proxy_epochs,
            "seed": job.seed,
            "labels": np.asarray(job.labels),
            "indices": None if job.indices is None else np.asarray(job.indices),
            "record_logits": job.record_logits,
            "record_heldout": job.record_heldout,
        }

    def _save_scoring_model(self, path: Path, fit) -> None:
        fit.dynamics.save(path / "dynamics.npz")
        if fit.heldout is not None:
            fit.heldout.save(path / "heldout.npz")
        np.save(path / "probs.npy", predict_probs(fit.module, self.data.train_eval))
        info = {"steps": fit.steps, "seconds": fit.seconds, "samples_seen": fit.samples_seen}
        (path / "info.json").write_text(json.dumps(info))
