"""What a protocol receives: the data, the seed, the model service, the run's timers and ledger.

A protocol never reads the global config: what it needs of the run is here, and every model it
asks for goes through `ctx.models` (services/models.py), which trains it once per artifact key
and accounts for it.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from coreset_lab.data.base import DataBundle
from coreset_lab.errors import UserError
from coreset_lab.store.artifacts import ArtifactStore
from coreset_lab.store.fingerprint import (
    data_fingerprint,
    runtime_fingerprint,
    with_file_fingerprints,
)
from coreset_lab.training.recipe import Recipe
from coreset_lab.values import one_of

CACHE_MODES = (True, False, "refresh")
FILE_IDENTITY = ("sampled", "full")


@dataclass(frozen=True)
class RunSpec:
    """The parts of a run's config that the services read, resolved to plain values (picklable:
    a worker process rebuilds the same context from it)."""

    dataset: dict
    model: dict
    trainer: dict
    loggers: dict
    seed: int
    file_identity: str = "sampled"

    @classmethod
    def from_config(cls, cfg: DictConfig) -> RunSpec:
        def plain(key):
            node = cfg.get(key)
            return OmegaConf.to_container(node, resolve=True) if node is not None else {}

        return cls(
            plain("dataset"), plain("model"), plain("trainer"), plain("logger") or {},
            int(cfg.seed), cfg.get("file_identity", "sampled"),
        )  # fmt: skip

    def __post_init__(self) -> None:
        if self.file_identity not in FILE_IDENTITY:
            raise UserError(f"file_identity must be sampled or full, got {self.file_identity!r}")

    def for_worker(self) -> RunSpec:
        """Only the CSV logger survives in a worker process (W&B runs belong to the parent)."""
        return dataclasses.replace(
            self, loggers={k: v for k, v in self.loggers.items() if k == "csv"}
        )


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


def check_cache(cache: object) -> bool | str:
    """true, false or refresh, type included (cache=1 is not true)."""
    one_of(*CACHE_MODES)(cache, "cache")
    return cache


def open_store(cfg: DictConfig, started: float) -> ArtifactStore:
    """The run's artifact store: `cache` true (reuse), false (a private store removed at the
    end) or refresh (rebuild whatever the run needs that was finished before `started`). Every
    key carries the device the trainer resolves to and the library versions."""
    cache = check_cache(cfg.get("cache", True))
    environment = runtime_fingerprint(Recipe.from_config(cfg.trainer).device)
    root = cfg.paths.store_dir if cache else None
    return ArtifactStore(root, environment, refresh_since=started if cache == "refresh" else None)


class RunContext:
    def __init__(self, spec: RunSpec, data: DataBundle, store: ArtifactStore, out_dir: Path):
        from coreset_lab.services.models import ModelService

        self.spec = spec
        self.data = data
        self.seed = spec.seed
        self.out_dir = Path(out_dir)
        self.store = store
        self.ledger = Ledger(n_train=len(data.train))
        self.full_file_hash = spec.file_identity == "full"
        self.data_id = data_fingerprint(data, self.full_file_hash)
        self._open_stages: list[float] = []  # seconds spent in stages nested in the open ones
        self.models = ModelService(self)

    @classmethod
    def from_config(cls, cfg: DictConfig, data: DataBundle, store: ArtifactStore, out_dir):
        return cls(RunSpec.from_config(cfg), data, store, Path(out_dir))

    def with_classes(self, k: int) -> RunContext:
        """This context with models of k output classes (the ELFS proxy and β trials learn k
        pseudo-classes); it shares the store, ledger and timers. The labels are untouched."""
        if k == self.data.num_classes:
            return self
        from coreset_lab.services.models import ModelService

        other = copy.copy(self)
        other.data = dataclasses.replace(self.data, num_classes=k)
        other.models = ModelService(other)
        return other

    def config_spec(self, node) -> dict:
        """A config node as it enters a key: resolved, with the whole-content identity of every
        file it names (file_identity=sampled is for image trees only: these are read whole)."""
        if OmegaConf.is_config(node):
            node = OmegaConf.to_container(node, resolve=True)
        return with_file_fingerprints(node if node is not None else {})

    @contextmanager
    def stage(self, name: str):
        """Time a stage. A stage opened inside another counts for itself only: the outer one
        gets the rest (UNSEEN's stage models train inside its selection)."""
        start = time.perf_counter()
        self._open_stages.append(0.0)
        try:
            yield
        finally:
            spent = time.perf_counter() - start
            inner = self._open_stages.pop()
            if self._open_stages:
                self._open_stages[-1] += spent
            seconds = self.ledger.stage_seconds
            seconds[name] = seconds.get(name, 0.0) + spent - inner
