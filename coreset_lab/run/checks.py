"""Refuse bad or incompatible configs before any work, in one place.

`check_config(cfg)` runs before anything is loaded or trained: every value the config alone
decides (types, ranges, known options) and every combination of protocol, scorer and selector
that cannot work. `check_against_data(cfg, data)` runs right after the dataset is loaded and
before any model trains: the checks that need the train set (class sizes, sample count, whether
it is in memory). Each failure is a `UserError`: one line naming the key and the fix.

The per-component validators that exist (scorer and selector constructors, `UnseenConfig`,
the clustering configs, the encoder options, `check_folds`, `stage_sizes`, `use_fast_engine`)
are called, not rewritten; this module adds what no component checks and the cross-checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from omegaconf import DictConfig

from coreset_lab.data.base import DataBundle
from coreset_lab.errors import UserError
from coreset_lab.protocols.base import Labels, Protocol, Settings, build_protocol
from coreset_lab.registry import declared_name, instantiate
from coreset_lab.report.paper import check_paper
from coreset_lab.run.config import MOVED_TO_PROTOCOL
from coreset_lab.run.identity import plain
from coreset_lab.scoring.base import Scorer
from coreset_lab.selection.budget import Selector
from coreset_lab.services.context import RunSpec, check_cache
from coreset_lab.services.models import scoring_recipe
from coreset_lab.training.recipe import Recipe, check_options
from coreset_lab.values import check_bool, check_int, one_of

# numpy, torch and Lightning all seed from an unsigned 32-bit integer; Lightning replaces a seed
# outside it with a random one, silently.
MAX_SEED = 2**32 - 1


@dataclass
class Components:
    scorer: Scorer
    selector: Selector
    protocol: Protocol
    settings: Settings
    spec: RunSpec  # what the services read of the config


def check_config(cfg: DictConfig) -> Components:
    """Everything the config alone decides; returns the scorer, selector and protocol."""
    check_moved_options(cfg)
    seed = check_seed(cfg.get("seed"), "seed")
    evaluate = check_evaluate(cfg.get("evaluate", "auto"))
    check_paper(cfg.get("paper"))
    check_dataset(cfg.dataset)
    check_model(cfg.model)
    check_trainer(cfg.trainer)
    check_store(cfg)
    scorer, selector, protocol = (
        instantiate(cfg.scorer, "scorer"),
        instantiate(cfg.selector, "selector"),
        build_protocol(cfg.protocol),
    )
    scoring, epochs = scoring_recipe(cfg.trainer)
    settings = Settings(seed, evaluate, scoring, epochs)
    parts = Components(scorer, selector, protocol, settings, RunSpec.from_config(cfg))
    if protocol.selects:  # full reads neither scorer nor selector
        check_provided(protocol, scorer, selector)
    protocol.check(scorer, selector, parts.settings)
    if protocol.selects:  # after the protocol's own refusals, which say more
        check_scorer_epochs(protocol, scorer, epochs)
    from coreset_lab.data.registry import canonical_name

    dataset = canonical_name(cfg.dataset.name)
    if dataset in POOLS:
        check_labels(cfg, parts, Labels(dataset, labelled=False, has_test=False))
    return parts


def check_against_data(cfg: DictConfig, parts: Components, data: DataBundle) -> None:
    """What needs the loaded train set, before any model trains."""
    check_engines(cfg, data)
    check_labels(cfg, parts, Labels.of(data))
    parts.protocol.check_data(data, parts.scorer, parts.selector, parts.settings)


def check_moved_options(cfg: DictConfig) -> None:
    """An experiment or override that still spells a protocol option the old way."""
    for old in MOVED_TO_PROTOCOL:
        node = cfg.get(old)
        if node is not None:
            keys = list(node) if isinstance(node, DictConfig) else []
            example = f"{old}.{keys[0]} is now protocol.{keys[0]}" if keys else ""
            raise UserError(
                f"the {old}.* options moved under protocol.* ({example or 'same names'}): "
                f"write protocol.<option> in overrides and a protocol: block in experiments"
            )


# --- single values ----------------------------------------------------------------------------


def check_seed(value: object, key: str) -> int:
    return check_int(value, key, 0, MAX_SEED)


def check_evaluate(value: object) -> bool | str:
    """true, false or auto (evaluate when the data has labels and a test split)."""
    if value != "auto" and not isinstance(value, bool):
        raise UserError(f"evaluate must be true, false or auto, got {value!r}")
    return value


def check_dataset(node: DictConfig) -> None:
    """Values; unknown options are refused by build_dataset before it reads a file."""
    from coreset_lab.data.registry import canonical_name

    d = plain(node)
    canonical_name(d.get("name"))  # unknown names: the list of known ones
    for key in ("train_subset", "test_subset"):
        if d.get(key) is not None:
            check_int(d[key], f"dataset.{key}", 1)
    check_seed(d.get("subset_seed", 0), "dataset.subset_seed")
    check_bool(d.get("download", False), "dataset.download")
    if "image_size" in d and d["image_size"] != "auto":  # null is not auto
        check_int(d["image_size"], "dataset.image_size", 8)
    if d.get("channels", "auto") != "auto":
        one_of(1, 3)(d["channels"], "dataset.channels")
    one_of(True, False, "auto")(d.get("in_memory", "auto"), "dataset.in_memory")
    check_dataset_files(d)


# Datasets that read the file(s) named by dataset.path (see conf/dataset/*.yaml).
NEEDS_PATH = ("path_list", "arrays")


def _given(value: object) -> bool:
    return value not in (None, "", "???")


def check_dataset_files(d: dict) -> None:
    """The folder or files a dataset reads exist (the content is checked as it loads)."""
    from coreset_lab.data.base import resolve_root
    from coreset_lab.data.registry import canonical_name

    name = canonical_name(d.get("name"))
    if name == "unlabelled_folder":
        if not _given(d.get("root")):
            raise UserError("dataset=unlabelled_folder needs dataset.root=/path/to/images")
        if not resolve_root(d["root"], ".").is_dir():
            raise UserError(f"dataset.root={d['root']}: no such folder")
    if name in NEEDS_PATH and not _given(d.get("path")):
        what = "list.txt or list.csv" if name == "path_list" else "images.npy or arrays.npz"
        raise UserError(f"dataset={name} needs dataset.path=/path/to/{what}")
    for key in ("path", "labels"):
        if name in NEEDS_PATH and _given(d.get(key)) and not resolve_root(d[key], ".").is_file():
            raise UserError(f"dataset.{key}={d[key]}: no such file")


def check_model(node: DictConfig) -> None:
    import coreset_lab.models  # noqa: F401  (registers the archs)
    from coreset_lab.registry import lookup

    lookup("model", str(node.get("arch")).strip().lower().replace("-", "_"), "model.arch")
    kwargs = node.get("kwargs")
    kwargs = plain(kwargs) if kwargs is None or isinstance(kwargs, DictConfig) else kwargs
    if not isinstance(kwargs, dict):
        raise UserError(
            f"model.kwargs must be a mapping of the arch's options ({{}} for none, e.g. "
            f"model.kwargs.width=16), got {kwargs!r}"
        )
    for key, value in kwargs.items():
        if key in ("width", "depth") and value is not None:
            check_int(value, f"model.kwargs.{key}", 1)


# --- the trainer ----------------------------------------------------------------------------

RECIPE_KEYS = {f.name for f in fields(Recipe)}
BUDGET_KEYS = ("proxy_epochs", "target_iterations", "target_epochs")


def check_trainer(node: DictConfig) -> None:
    """The target recipe, the scoring recipe (the trainer with `trainer.scoring` over it) and
    the training budgets."""

    t = plain(node)
    scoring = t.pop("scoring", None)
    if scoring is not None and not isinstance(scoring, dict):
        raise UserError(
            f"trainer.scoring must be a mapping of trainer options for scoring models (e.g. "
            f"trainer/scoring=fast or trainer.scoring.batch_size=512), got {scoring!r}"
        )
    overrides = {k: v for k, v in (scoring or {}).items() if v is not None}
    unknown = sorted(set(t) - RECIPE_KEYS - set(BUDGET_KEYS))
    if unknown:  # Recipe.from_config would ignore them silently
        raise UserError(f"unknown trainer option(s) {', '.join(unknown)}")
    _check_recipe({k: v for k, v in t.items() if k in RECIPE_KEYS}, "trainer")
    _check_recipe({**t, **overrides}, "trainer", overrides)
    scoring_recipe(node)  # unknown trainer.scoring options, proxy_epochs, Recipe.validate
    _check_target_budget(t)


def _check_recipe(recipe: dict, prefix: str, overrides: dict | None = None) -> None:
    """The recipe's own checks (training/recipe.py), with the keys set by `overrides` named
    trainer.scoring.<key>."""

    def key_of(name: str) -> str:
        return f"{prefix}.scoring.{name}" if overrides and name in overrides else f"{prefix}.{name}"

    check_options(recipe, key_of)


def _check_target_budget(t: dict) -> None:
    iterations, epochs = t.get("target_iterations"), t.get("target_epochs")
    if (iterations is None) == (epochs is None):
        raise UserError(
            "set exactly one of trainer.target_iterations (fixed iterations whatever the coreset "
            "size, the CCS/ELFS protocol) and trainer.target_epochs (fixed epochs, TDDS)"
        )
    if iterations is not None:
        check_int(iterations, "trainer.target_iterations", 1)
    else:
        check_int(epochs, "trainer.target_epochs", 1)


# --- the store --------------------------------------------------------------------------------


def check_store(cfg: DictConfig) -> None:
    """paths.store_dir must be (or become) a writable directory; checked only when the store is
    used, since `cache=false` keeps artifacts in a private temporary store."""
    if not check_cache(cfg.get("cache", True)):
        return
    store = Path(str(cfg.paths.store_dir))
    existing = next(p for p in (store, *store.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(
            f"paths.store_dir={store} cannot be a directory: {existing} is a file; point "
            f"paths.store_dir at a directory"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"paths.store_dir={store}: {existing} is not writable")


# --- combinations -------------------------------------------------------------------------------


def check_provided(protocol: Protocol, scorer: Scorer, selector: Selector) -> None:
    """The scorer and selector read only what the protocol provides."""
    missing = (scorer.needs | selector.needs) - protocol.provides
    if not missing:
        return
    who = [
        f"scorer={declared_name(type(scorer))}" if scorer.needs - protocol.provides else "",
        f"selector={declared_name(type(selector))}" if selector.needs - protocol.provides else "",
    ]
    who = [w for w in who if w]
    raise UserError(
        f"{' and '.join(who)} read{'s' if len(who) == 1 else ''} {', '.join(sorted(missing))}, "
        f"which protocol={protocol.name} does not provide: {protocol.missing_hint(missing)}"
    )


def check_scorer_epochs(protocol: Protocol, scorer: Scorer, epochs: int) -> None:
    """A scorer that reads a number of recorded epochs gets scoring models that train them."""
    if protocol.trains_scoring_models(scorer):
        scorer.check_epochs(epochs)


# --- against the data -----------------------------------------------------------------------


def check_engines(cfg: DictConfig, data: DataBundle) -> None:
    """trainer.engine=fast needs an in-memory split on one device (use_fast_engine says so)."""
    from coreset_lab.training.fast import use_fast_engine

    use_fast_engine(Recipe.from_config(cfg.trainer), data)
    use_fast_engine(scoring_recipe(cfg.trainer)[0], data)


LABEL_FREE_METHODS = "method=elfs, d2, prototypicality or random"


# Datasets that never have labels: refused combinations are found before their images load.
POOLS = ("unlabelled_folder", "path_list")


def check_labels(cfg: DictConfig, parts: Components, labels: Labels) -> None:
    """What the run reads against what the data has: without labels only what the protocol says
    reads none (the label-free protocol, a random selection); evaluate=true and whatever else
    needs test labels (method=full, protocol.beta_truth) need labels and a test split
    (evaluate=auto stops after selection without them)."""
    protocol = parts.protocol
    if not labels.labelled:
        reader = protocol.label_reader(parts.scorer, parts.selector)
        if reader:
            raise UserError(
                f"dataset {labels.name} has no labels, and {reader} needs them (it trains on "
                f"ground-truth labels): use a label-free method, {LABEL_FREE_METHODS}"
            )
        protocol.check_unlabelled(labels.name)
    if labels.labelled and labels.has_test:
        return
    lacks = "test split" if labels.labelled else "labels"
    wants = ["evaluate=true"] if parts.settings.evaluate is True else []
    wants += protocol.test_label_readers()
    if wants:
        raise UserError(
            f"{' and '.join(wants)} trains a target model on labels and tests it, and dataset "
            f"{labels.name} has no {lacks}: use evaluate=auto or false (selection only)"
        )


__all__ = ["Components", "check_against_data", "check_config"]
