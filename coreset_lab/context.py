"""What every protocol needs: the data, the recipe, the artifact store, timers and the cost ledger.

A protocol asks for *scoring models* (trained on some labels and some subset, recording dynamics);
the context trains each one once per artifact key and counts what it cost.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from coreset_lab.data.base import DataBundle
from coreset_lab.dynamics import Dynamics
from coreset_lab.models import build_model
from coreset_lab.store import SCRATCH, ArtifactStore
from coreset_lab.training.fit import Budget, train_classifier
from coreset_lab.training.predict import predict_probs
from coreset_lab.training.recipe import Recipe

# Recipe fields that change where or how visibly a model trains, not what it learns.
_NOT_IN_KEY = (
    "progress",
    "num_workers",
    "devices",
    "strategy",
    "accelerator",
    "checkpoint_every_steps",
)


@dataclass
class ScoringModel:
    dynamics: Dynamics  # of the samples it trained on (train mode, augmented)
    probs: np.ndarray  # [N, C] softmax on un-augmented train inputs (all of them), eval mode
    info: dict
    heldout: Dynamics | None = None  # per-epoch eval-mode records of the samples it never saw


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


class RunContext:
    def __init__(self, cfg: DictConfig, data: DataBundle, store: ArtifactStore, out_dir: Path):
        self.cfg = cfg
        self.data = data
        self.store = store
        self.out_dir = out_dir
        self.seed = int(cfg.seed)
        self.recipe = Recipe.from_config(cfg.trainer)
        self.ledger = Ledger(n_train=len(data.train))

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
        return [
            instantiate(entry, **({"prefix": name} if key == "wandb" else {"name": name}))
            for key, entry in entries.items()
            if isinstance(entry, DictConfig) and "_target_" in entry
        ]

    def training_spec(self) -> dict:
        """What determines a trained model besides its labels, subset, budget and seed."""
        return {
            "dataset": OmegaConf.to_container(self.cfg.dataset, resolve=True),
            "model": OmegaConf.to_container(self.cfg.model, resolve=True),
            "recipe": {k: v for k, v in vars(self.recipe).items() if k not in _NOT_IN_KEY},
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
        epochs = int(self.cfg.trainer.proxy_epochs)
        spec = {
            **self.training_spec(),
            "epochs": epochs,
            "seed": seed,
            "labels": np.asarray(labels),
            "indices": None if indices is None else np.asarray(indices),
            "record_logits": record_logits,
            "record_heldout": record_heldout,
        }

        def build(path: Path) -> None:
            fit = train_classifier(
                self.new_model(seed),
                self.data,
                labels,
                self.recipe,
                Budget(epochs=epochs),
                indices=indices,
                seed=seed,
                record=True,
                record_logits=record_logits,
                record_heldout=record_heldout,
                logger=self.loggers(tag),
                checkpoint_dir=path / SCRATCH,
            )
            fit.dynamics.save(path / "dynamics.npz")
            if fit.heldout is not None:
                fit.heldout.save(path / "heldout.npz")
            np.save(path / "probs.npy", predict_probs(fit.module, self.data.train_eval))
            info = {"steps": fit.steps, "seconds": fit.seconds, "samples_seen": fit.samples_seen}
            (path / "info.json").write_text(json.dumps(info))
            self.ledger.models_built_here += 1

        path = self.store.get_or_build("scoring_model", spec, build)
        info = json.loads((path / "info.json").read_text())
        self.ledger.used(info["samples_seen"])
        heldout = path / "heldout.npz"
        return ScoringModel(
            Dynamics.load(path / "dynamics.npz"),
            np.load(path / "probs.npy"),
            info,
            Dynamics.load(heldout) if heldout.exists() else None,
        )
