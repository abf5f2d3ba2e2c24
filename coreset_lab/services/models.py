"""The model service: every training a run asks for (proxy, fold, stage, β trial, target).

A protocol describes a model it needs (a `ScoringJob`: labels, subset, seed, what to record) and
asks `ctx.models`; the service trains it once per artifact key, one after the other, as one
vmapped group or in worker processes, and does the store and ledger accounting in one place.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from torch.utils.data import Subset

from coreset_lab.dynamics import Dynamics
from coreset_lab.errors import UserError
from coreset_lab.models import build_model
from coreset_lab.speed_only import SPEED_ONLY
from coreset_lab.store.artifacts import SCRATCH, digest
from coreset_lab.training.budget import Budget
from coreset_lab.training.fast import Plan, train_models, use_fast_engine
from coreset_lab.training.fit import train_classifier
from coreset_lab.training.predict import accuracy, predict, predict_probs
from coreset_lab.training.recipe import Recipe

log = logging.getLogger(__name__)

# What a model learns does not depend on these; the device and precision do, and enter every key
# resolved (`training_spec`, the store's environment).
_NOT_IN_KEY = SPEED_ONLY | {"precision"}
PARALLEL = ("serial", "vmap", "processes")


@dataclass
class ScoringModel:
    dynamics: Dynamics  # of the samples it trained on (train mode, augmented)
    probs: np.ndarray  # [N, C] softmax on un-augmented train inputs (all of them), eval mode
    info: dict
    heldout: Dynamics | None = None  # per-epoch eval-mode records of the samples it never saw
    # [N] ||h||^2 of the penultimate features on un-augmented inputs, eval mode (with `probs`)
    feature_sqnorm: np.ndarray | None = None
    # [N, d] the penultimate features h themselves (float32, memory-mapped), with
    # `record_features` only: N x d floats in the store per model (BADGE's gradient embeddings)
    features: np.ndarray | None = None


@dataclass
class ScoringJob:
    """A scoring model to have: trained on `labels` over `indices` (all samples if None)."""

    labels: np.ndarray
    indices: np.ndarray | None = None
    seed: int = 0
    tag: str = "proxy"
    record_logits: bool = False
    record_heldout: bool = False
    record_features: bool = False  # also keep h [N, d] (ScoringModel.features)


@dataclass
class Evaluation:
    test_accuracy: float
    steps: int
    epochs: int
    samples_seen: int
    # test accuracy of each class (index = class): class-aware budgets are judged by its spread
    per_class_accuracy: list[float | None]


def scoring_recipe(trainer_cfg) -> tuple[Recipe, int]:
    """The recipe and epoch count of scoring models (proxy, fold, stage): the trainer's, with the
    overrides of `trainer.scoring` (trainer=fast sets them), and never label smoothing."""
    trainer = dict(_plain(trainer_cfg))
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


def target_budget(trainer_cfg) -> Budget:
    trainer = _plain(trainer_cfg)
    iterations, epochs = trainer.get("target_iterations"), trainer.get("target_epochs")
    if (iterations is None) == (epochs is None):
        raise UserError(
            "set exactly one of trainer.target_iterations (fixed iterations whatever the coreset "
            "size, the CCS/ELFS protocol) and trainer.target_epochs (fixed epochs, TDDS)"
        )
    return Budget(epochs=epochs, iterations=iterations)


def _plain(node) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


class ModelService:
    def __init__(self, ctx):
        spec = ctx.spec
        self.ctx = ctx
        self.recipe = Recipe.from_config(spec.trainer)  # target models and β trials
        self.scoring_recipe, self.proxy_epochs = scoring_recipe(spec.trainer)
        self.target_budget = target_budget(spec.trainer)

    @property
    def _store(self):
        return self.ctx.store

    @property
    def _ledger(self):
        return self.ctx.ledger

    def new_model(self, seed: int):
        """A fresh model whose initial weights depend on the seed alone, not on what the
        process ran before (so workers, reruns and resumed runs agree)."""
        torch.manual_seed(seed)
        d, model = self.ctx.data, self.ctx.spec.model
        return build_model(
            model["arch"], d.num_classes, d.in_channels, d.image_size, **(model.get("kwargs") or {})
        )

    def loggers(self, name: str):
        """Lightning loggers for one training: a CSV directory per training, and for W&B the
        job's single run with this training's metric prefix (see run/tracking.py)."""
        loggers = [
            instantiate(entry, **({"prefix": name} if key == "wandb" else {"name": name}))
            for key, entry in self.ctx.spec.loggers.items()
            if isinstance(entry, dict) and "_target_" in entry
        ]
        for logger in loggers:
            if hasattr(logger, "LOGGER_JOIN_CHAR"):  # W&B: `proxy/train_loss`, a panel section
                logger.LOGGER_JOIN_CHAR = "/"  # per training, not Lightning's `proxy-train_loss`
        return loggers

    def training_spec(self, recipe: Recipe | None = None) -> dict:
        """What determines a trained model besides its labels, subset, budget and seed."""
        recipe = self.recipe if recipe is None else recipe
        ctx = self.ctx
        return {
            "dataset": ctx.config_spec(ctx.spec.dataset),
            "data": ctx.data_id,
            "num_classes": ctx.data.num_classes,  # the model's outputs
            "model": ctx.config_spec(ctx.spec.model),
            "recipe": {k: v for k, v in vars(recipe).items() if k not in _NOT_IN_KEY},
            "device": recipe.device.type,
            "precision": recipe.resolved_precision(),
        }

    # --- scoring models -----------------------------------------------------------------------

    def scoring_model(self, labels: np.ndarray, **job) -> ScoringModel:
        """A model trained on ``labels`` (see ScoringJob for the options), once per key."""
        return self.get(ScoringJob(labels, **{"seed": self.ctx.seed, **job}))

    def get(self, job: ScoringJob) -> ScoringModel:
        def build(path: Path) -> None:
            fit = train_classifier(
                self.new_model(job.seed),
                self.ctx.data,
                job.labels,
                self.scoring_recipe,
                Budget(epochs=self.proxy_epochs),
                indices=job.indices,
                seed=job.seed,
                record=True,
                record_logits=job.record_logits,
                record_heldout=job.record_heldout,
                logger=self.loggers(job.tag),
                checkpoint_dir=path / SCRATCH,
                name=job.tag,
            )
            self._save_scoring_model(path, fit, job.record_features)
            self._ledger.models_built_here += 1

        path = self._store.get_or_build("scoring_model", self._scoring_spec(job), build)
        info = json.loads((path / "info.json").read_text())
        self._ledger.used(info["samples_seen"])
        heldout, norms = path / "heldout.npz", path / "feature_sqnorm.npy"
        features = path / "features.npy"
        return ScoringModel(
            Dynamics.load(path / "dynamics.npz"),
            np.load(path / "probs.npy"),
            info,
            Dynamics.load(heldout) if heldout.exists() else None,
            np.load(norms) if norms.exists() else None,
            np.load(features, mmap_mode="r") if job.record_features else None,
        )

    def get_many(
        self, jobs: list[ScoringJob], parallel: str = "serial", workers: int = 1
    ) -> list[ScoringModel]:
        """The scoring model of every job, trained where missing: one after the other, as one
        vmapped group (the fast engine's `StackedStepper`), or in `workers` processes."""
        if parallel not in PARALLEL:
            raise ValueError(f"parallel must be one of {PARALLEL}, got {parallel!r}")
        built, count = [], 0
        if parallel == "vmap" and len(jobs) > 1:
            built = self._build_together(jobs)
            count = len(built)
        elif parallel == "processes" and workers > 1 and len(jobs) > 1:
            from coreset_lab.services.workers import train_in_processes

            built, count = train_in_processes(self.ctx, jobs, workers)
        models = [self.get(j) for j in jobs]
        # Built in a group or a worker and only read by `get`: built by this run.
        self._store.built_elsewhere(built)
        self._ledger.models_built_here += count
        return models

    def _build_together(self, jobs: list[ScoringJob]) -> list[str]:
        """Train the jobs the store lacks as one vmapped group, each stored under its own key.
        All jobs must share their labels and recording.

        The group is trained under one lock named after all its jobs, so processes racing for
        the same round (a sweep over prune rates shares fold models) train it once: the others
        wait, then find every model stored. Returns the keys built."""
        specs = [self._scoring_spec(j) for j in jobs]
        group = self._store.root / "scoring_model" / f".group-{digest(specs)}"
        group.parent.mkdir(parents=True, exist_ok=True)
        with self._store.lock(group, f"a group of {len(jobs)} scoring models"):
            todo = [i for i, spec in enumerate(specs) if not self._store.has("scoring_model", spec)]
            if len(todo) < 2:
                return []
            return self._train_group([jobs[i] for i in todo], [specs[i] for i in todo], group)

    def _train_group(self, jobs: list[ScoringJob], specs: list[dict], scratch: Path) -> list[str]:
        data = self.ctx.data
        if not use_fast_engine(self.scoring_recipe, data):
            raise UserError(
                "training scoring models together needs the fast engine: an in-memory dataset "
                "and trainer.engine=auto or fast"
            )
        log.info("training %d scoring models together as one vmapped group", len(jobs))
        everything = np.arange(len(data.train))
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
        first = jobs[0]
        fits = train_models(
            plans,
            data,
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
            before = len(self._store.built)
            self._store.get_or_build(
                "scoring_model",
                spec,
                lambda path, fit=fit: self._save_scoring_model(path, fit, first.record_features),
            )
            built += self._store.built[before:]  # counted once `get_many` has read them
            del self._store.built[before:]
        shutil.rmtree(scratch, ignore_errors=True)
        return built

    def _scoring_spec(self, job: ScoringJob) -> dict:
        spec = {
            **self.training_spec(self.scoring_recipe),
            "epochs": self.proxy_epochs,
            "seed": job.seed,
            "labels": np.asarray(job.labels),
            "indices": None if job.indices is None else np.asarray(job.indices),
            "record_logits": job.record_logits,
            "record_heldout": job.record_heldout,
        }
        if job.record_features:  # only then: every other model keeps the key it had
            spec["record_features"] = True
        return spec

    def _save_scoring_model(self, path: Path, fit, record_features: bool = False) -> None:
        fit.dynamics.save(path / "dynamics.npz")
        if fit.heldout is not None:
            fit.heldout.save(path / "heldout.npz")
        out = predict(fit.module, self.ctx.data.train_eval, keep_features=record_features)
        if record_features:
            if out.features is None:
                raise UserError(
                    "this model has no linear classifier layer, so its penultimate features "
                    "(BADGE's gradient embeddings) cannot be read: use a model whose last "
                    "layer is an nn.Linear"
                )
            np.save(path / "features.npy", out.features)
        np.save(path / "probs.npy", out.probs)
        if out.feature_sqnorm is not None:
            np.save(path / "feature_sqnorm.npy", out.feature_sqnorm)
        info = {"steps": fit.steps, "seconds": fit.seconds, "samples_seen": fit.samples_seen}
        (path / "info.json").write_text(json.dumps(info))

    # --- β trials and target models -------------------------------------------------------------

    def trial_accuracy(
        self, labels: np.ndarray, train: np.ndarray, held: np.ndarray, iterations: int, name: str
    ) -> float:
        """Accuracy on `held` (against `labels`) of a target-recipe model trained for
        `iterations` on `labels` over `train` (ELFS' label-free β trials)."""
        ctx = self.ctx
        spec = {
            **self.training_spec(),
            "pseudo": labels,
            "coreset": train,
            "held": held,
            "iterations": iterations,
            "seed": ctx.seed,
        }

        def build(path: Path) -> None:
            fit = train_classifier(
                self.new_model(ctx.seed),
                ctx.data,
                labels,
                self.recipe,
                Budget(iterations=iterations),
                indices=train,
                seed=ctx.seed,
                name=name,
            )
            probs = predict_probs(fit.module, Subset(ctx.data.train_eval, held.tolist()))
            trial = {"accuracy": accuracy(probs, labels[held]), "samples_seen": fit.samples_seen}
            (path / "trial.json").write_text(json.dumps(trial))
            self._ledger.models_built_here += 1

        path = self._store.get_or_build("beta_trial", spec, build)
        trial = json.loads((path / "trial.json").read_text())
        self._ledger.used(trial["samples_seen"])
        return trial["accuracy"]

    def evaluate(self, coreset: np.ndarray) -> Evaluation:
        """The target model trained on the coreset's ground-truth labels: its final test accuracy
        (final, not best: the test set never selects anything). The same coreset, recipe and seed
        are trained once (a rerun, or the `full` row repeated across prune rates, reuses it)."""
        ctx, data, budget = self.ctx, self.ctx.data, self.target_budget
        spec = {
            **self.training_spec(),
            "budget": asdict(budget),
            "seed": ctx.seed,
            "coreset": coreset,
        }

        def build(path: Path) -> None:
            fit = train_classifier(
                self.new_model(ctx.seed),
                data,
                data.train_targets,
                self.recipe,
                budget,
                indices=coreset,
                seed=ctx.seed,
                logger=self.loggers("target"),
                checkpoint_dir=path / SCRATCH,
                name="target",
            )
            probs = predict_probs(fit.module, data.test)
            acc = accuracy(probs, data.test_targets)
            per_class = per_class_accuracy(probs, data.test_targets, data.num_classes)
            result = Evaluation(acc, fit.steps, fit.epochs, fit.samples_seen, per_class)
            (path / "evaluation.json").write_text(json.dumps(asdict(result)))

        path = self._store.get_or_build("evaluation", spec, build)
        return Evaluation(**json.loads((path / "evaluation.json").read_text()))


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> list:
    """Accuracy on each class's test samples (None for a class the test set lacks)."""
    hits = probs.argmax(1) == labels
    return [float(hits[labels == c].mean()) if (labels == c).any() else None
            for c in range(num_classes)]  # fmt: skip
