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
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from coreset_lab.data.base import DataBundle
from coreset_lab.errors import UserError
from coreset_lab.protocols import get_protocol
from coreset_lab.protocols.fitting import TRAINED
from coreset_lab.run.identity import plain
from coreset_lab.scoring.base import Scorer, check_choice, check_int, check_real
from coreset_lab.selection import DoubleEnd
from coreset_lab.selection.budget import Selector, coreset_size
from coreset_lab.training.recipe import ENGINES, Recipe

# numpy, torch and Lightning all seed from an unsigned 32-bit integer; Lightning replaces a seed
# outside it with a random one, silently.
MAX_SEED = 2**32 - 1
PROTOCOLS_WITH_EMBEDDINGS = ("elfs",)
PRETRAINED_ENCODERS = ("timm", "torchvision")


@dataclass
class Components:
    scorer: Scorer
    selector: Selector
    protocol: Callable


def build(node: DictConfig):
    """instantiate(), but a UserError raised by the constructor reaches the user as itself."""
    try:
        return instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, UserError):
            raise err.__cause__ from None
        raise


def check_config(cfg: DictConfig) -> Components:
    """Everything the config alone decides; returns the scorer, selector and protocol."""
    protocol_name = str(cfg.protocol.name)
    protocol = get_protocol(protocol_name)
    check_seed(cfg.get("seed"), "seed")
    evaluate = check_evaluate(cfg.get("evaluate", "auto"))
    if evaluate is False and protocol_name == "full":
        raise UserError("method=full selects nothing: evaluate=false would leave nothing to do")
    check_dataset(cfg.dataset)
    check_model(cfg.model)
    check_trainer(cfg.trainer)
    check_store(cfg)
    scorer, selector = build(cfg.scorer), build(cfg.selector)
    if protocol_name != "full":  # full reads neither scorer nor selector
        check_embeddings_available(protocol_name, scorer, selector)
    if protocol_name == "unseen":
        check_unseen(cfg, scorer)
    if protocol_name == "elfs":
        check_elfs(cfg, selector)
    if protocol_name != "full":  # after the protocol's own refusals, which say more
        check_scorer_epochs(cfg, scorer)
    components = Components(scorer, selector, protocol)
    from coreset_lab.data.registry import canonical_name

    dataset = canonical_name(cfg.dataset.name)
    if dataset in POOLS:
        check_labels(cfg, components, Labels(dataset, labelled=False, has_test=False))
    return components


def check_against_data(cfg: DictConfig, components: Components, data: DataBundle) -> None:
    """What needs the loaded train set, before any model trains."""
    check_engines(cfg, data)
    protocol = str(cfg.protocol.name)
    check_labels(cfg, components, Labels.of(data))
    if protocol == "unseen":
        check_unseen_data(cfg, components.selector, data)
    if protocol == "elfs":
        check_cluster_count(cfg, components.scorer, data)
        check_precomputed(cfg, data)
    if protocol == "fitting":
        check_class_balance(components.selector, data)


# --- single values ----------------------------------------------------------------------------


def check_seed(value: object, key: str) -> int:
    return check_int(value, key, 0, MAX_SEED)


def check_bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{key} must be true or false, got {value!r}")
    return value


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
    if d.get("image_size") not in (None, "auto"):
        check_int(d["image_size"], "dataset.image_size", 8)
    if d.get("channels", "auto") != "auto":
        _one_of(1, 3)(d["channels"], "dataset.channels")
    _one_of(True, False, "auto")(d.get("in_memory", "auto"), "dataset.in_memory")
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
    from coreset_lab.models import KNOWN_ARCHS

    arch = str(node.get("arch")).strip().lower().replace("-", "_")
    if arch not in KNOWN_ARCHS:
        raise UserError(f"unknown model arch {node.get('arch')!r}; known: {', '.join(KNOWN_ARCHS)}")
    for key, value in (plain(node.get("kwargs")) or {}).items():
        if key in ("width", "depth") and value is not None:
            check_int(value, f"model.kwargs.{key}", 1)


# --- the trainer ----------------------------------------------------------------------------

INF = float("inf")
RECIPE_KEYS = {f.name for f in fields(Recipe)}
BUDGET_KEYS = ("proxy_epochs", "target_iterations", "target_epochs")
PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "bf16", "16-mixed", "16", "64-true", "64")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def _real(low, high, **kw):
    return lambda v, k: check_real(v, k, low, high, **kw)


def _int(low, high=None):
    return lambda v, k: check_int(v, k, low, high)


def _one_of(*allowed):
    """Exactly one of `allowed`, type included (True == 1 in Python, not here)."""

    def check(value, key):
        if not any(value == a and type(value) is type(a) for a in allowed):
            names = (str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
            shown = ", ".join(dict.fromkeys(names))  # 32 and "32" read the same
            raise UserError(f"{key} must be one of {shown}, got {value!r}")

    return check


def _text(value, key):
    if not isinstance(value, str) or not value:
        raise UserError(f"{key} must be a name, got {value!r}")


# One checker per recipe option: type and range (NaN and infinities are not numbers here).
RECIPE_CHECKS: dict[str, Callable[[object, str], object]] = {
    "batch_size": _int(1),
    "lr": _real(0.0, INF, low_open=True),
    "momentum": _real(0.0, 1.0, high_open=True),
    "nesterov": check_bool,
    "weight_decay": _real(0.0, INF),
    "min_lr": _real(0.0, INF),
    "warmup_steps": _int(0),
    "warmup_fraction": _real(0.0, 1.0, high_open=True),
    "label_smoothing": _real(0.0, 1.0, high_open=True),
    "augment": check_bool,
    "engine": lambda v, k: check_choice(v, k, ENGINES),
    "compile": _one_of(True, False, "auto"),
    "channels_last": _one_of(True, False, "auto"),
    "accelerator": lambda v, k: check_choice(v, k, ACCELERATORS),
    "devices": _int(1),
    "strategy": _text,
    "precision": _one_of(*PRECISIONS, 16, 32, 64),
    "num_workers": _int(0),
    "deterministic": check_bool,
    "progress": _one_of(True, False, "auto"),
    "checkpoint_every_steps": _int(1),
}


def check_trainer(node: DictConfig) -> None:
    """The target recipe, the scoring recipe (the trainer with `trainer.scoring` over it) and
    the training budgets."""
    from coreset_lab.services.context import scoring_recipe

    t = plain(node)
    overrides = {k: v for k, v in (t.pop("scoring", None) or {}).items() if v is not None}
    unknown = sorted(set(t) - RECIPE_KEYS - set(BUDGET_KEYS))
    if unknown:  # Recipe.from_config would ignore them silently
        raise UserError(f"unknown trainer option(s) {', '.join(unknown)}")
    _check_recipe({k: v for k, v in t.items() if k in RECIPE_KEYS}, "trainer")
    _check_recipe({**t, **overrides}, "trainer", overrides)
    scoring_recipe(node)  # unknown trainer.scoring options, proxy_epochs, Recipe.validate
    _check_target_budget(t)


def _check_recipe(recipe: dict, prefix: str, overrides: dict | None = None) -> None:
    """Every option and the two that must agree; keys set by `overrides` are named
    trainer.scoring.<key>."""

    def key_of(name: str) -> str:
        return f"{prefix}.scoring.{name}" if overrides and name in overrides else f"{prefix}.{name}"

    for name, check in RECIPE_CHECKS.items():
        if name in recipe:
            check(recipe[name], key_of(name))
    lr, min_lr = recipe.get("lr", 0.1), recipe.get("min_lr", 0.0)
    if min_lr > lr:
        raise UserError(
            f"{key_of('min_lr')}={min_lr} is above {key_of('lr')}={lr}: the cosine schedule "
            f"decays from lr to min_lr"
        )
    if recipe.get("nesterov", False) and recipe.get("momentum", 0.9) == 0:
        raise UserError(
            f"{key_of('nesterov')}=true needs {key_of('momentum')} > 0 (SGD refuses Nesterov "
            f"without momentum); set nesterov=false or a momentum"
        )


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


def _bf16_on_cuda(cfg: DictConfig) -> bool:
    """Whether the scoring models would train under bf16 autocast on CUDA (`auto`: on a GPU)."""
    import torch

    cuda = _scoring_value(cfg, "accelerator") != "cpu" and torch.cuda.is_available()
    precision = str(_scoring_value(cfg, "precision"))
    return cuda and precision in ("bf16-mixed", "auto")


def _scoring_value(cfg: DictConfig, key: str):
    scoring = cfg.trainer.get("scoring") or {}
    value = scoring.get(key)
    return cfg.trainer.get(key) if value is None else value


# --- the store --------------------------------------------------------------------------------


def check_store(cfg: DictConfig) -> None:
    """paths.store_dir must be (or become) a writable directory; checked only when the store is
    used, since `cache=false` keeps artifacts in a private temporary store."""
    if not cfg.get("cache", True):
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


def check_embeddings_available(protocol: str, scorer: Scorer, selector: Selector) -> None:
    """Embeddings (of an encoder) exist only in the label-free protocol."""
    if protocol in PROTOCOLS_WITH_EMBEDDINGS:
        return
    wants = [
        f"scorer={scorer.name}" if "embeddings" in scorer.needs else "",
        f"selector={type(selector).__name__.lower()}" if selector.needs_embeddings else "",
    ]
    wants = [w for w in wants if w]
    if wants:
        verb = "work" if len(wants) > 1 else "works"
        raise UserError(
            f"{' and '.join(wants)} {verb} on encoder embeddings, which protocol={protocol} "
            f"does not compute: use protocol=elfs (or method=prototypicality / method=d2)"
        )


def check_scorer_epochs(cfg: DictConfig, scorer: Scorer) -> None:
    """TDDS reads `trajectory_len` recorded epochs: the scoring model must train that long."""
    needed = getattr(scorer, "trajectory_len", None)
    if needed is None or not scorer.needs & TRAINED:
        return
    epochs = _scoring_value(cfg, "proxy_epochs")
    if needed > epochs:
        raise UserError(
            f"scorer.trajectory_len={needed} needs at least {needed} recorded epochs, but "
            f"trainer.proxy_epochs={epochs}: raise trainer.proxy_epochs or lower "
            f"scorer.trajectory_len (and scorer.window ≤ it)"
        )


def check_unseen(cfg: DictConfig, scorer: Scorer) -> None:
    from coreset_lab.protocols.unseen import UnseenConfig, check_scorer

    config = UnseenConfig.from_cfg(cfg.get("unseen"))
    check_scorer(scorer)  # logits or embeddings: not what a held-out model gives
    if not scorer.needs:
        raise UserError(
            f"protocol=unseen scores with models that never saw the sample; scorer "
            f"{scorer.name!r} uses no model, so there is nothing to hold out: use a model-based "
            f"scorer (margin, entropy, el2n, ...) or method=random"
        )
    if config.labels != "gt":
        raise UserError(
            "unseen.labels=pseudo needs pseudo-labels from the label-free (ELFS) stages, which "
            "this protocol does not build yet; use unseen.labels=gt"
        )
    check_seed(int(cfg.seed) + config.repeats - 1, "seed + unseen.repeats - 1")
    if config.batched and _scoring_value(cfg, "engine") == "lightning":
        raise UserError(
            "unseen.batched=true trains the models of a round as one vmapped model on the fast "
            "engine: set trainer.engine=auto or fast (or unseen.batched=false)"
        )
    if config.batched and _bf16_on_cuda(cfg):
        # measured on an H200 (outputs/tables/gpu_check): the vmapped batch norm's backward wants
        # running stats in bf16 under autocast and fails ("Expected running_mean to have type
        # BFloat16 but got Float"). The group stepper now runs batch norm in float32 under
        # autocast (steppers._float32_input): a second H200 run trained without error but the
        # group disagreed with its models alone beyond the bf16 bound (mean p_label gap 0.037 >
        # 0.03; tests/test_gpu.py), so it stays refused until that test passes
        raise UserError(
            "unseen.batched=true cannot train in bf16 on a GPU yet (the vmapped group does not "
            "match its models trained alone): set trainer.precision=32-true or unseen.batched=false"
        )
    if "dynamics" in scorer.needs and _scoring_value(cfg, "devices") != 1:
        raise UserError(
            f"scorer {scorer.name!r} under protocol=unseen records held-out predictions every "
            f"epoch, which needs a single device: set trainer.devices=1"
        )


def check_elfs(cfg: DictConfig, selector: Selector) -> None:
    check_encoder(cfg.encoder)
    check_clustering(cfg.clustering)
    opts = plain(cfg.get("elfs"))
    search = check_bool(opts.get("beta_search"), "elfs.beta_search")
    grid = opts.get("beta_grid")
    if not isinstance(grid, list) or not grid:
        raise UserError(f"elfs.beta_grid must be a non-empty list of β values, got {grid!r}")
    for beta in grid:
        check_real(beta, "elfs.beta_grid", 0.0, 1.0, high_open=True)
    fraction = opts.get("holdout_fraction")
    check_real(fraction, "elfs.holdout_fraction", 0.0, 1.0, low_open=True, high_open=True)
    if opts.get("search_iterations") is not None:
        check_int(opts["search_iterations"], "elfs.search_iterations", 1)
    if check_bool(opts.get("beta_truth", False), "elfs.beta_truth") and not (
        search and isinstance(selector, DoubleEnd) and cfg.get("evaluate", "auto") is not False
    ):
        raise UserError(
            "elfs.beta_truth=true checks the label-free β search against test labels: it needs "
            "selector=double_end, elfs.beta_search=true and evaluate=true (or auto)"
        )
    if search and isinstance(selector, DoubleEnd) and min(grid) > selector.prune_rate:
        raise UserError(f"elfs.beta_grid has no β ≤ selector.prune_rate={selector.prune_rate}")


def check_encoder(node: DictConfig) -> None:
    from coreset_lab.embedding import resolve_options
    from coreset_lab.embedding.simclr import DEFAULTS, check_options

    opts = resolve_options(node)
    if opts["kind"] == "simclr":
        check_options({**DEFAULTS, **opts})
    if opts["kind"] == "pca":  # its upper bound (the pixel count) is checked on the data
        check_int(opts["dim"], "encoder.dim", 1)
        check_bool(opts["whiten"], "encoder.whiten")
    if opts["kind"] == "precomputed":
        for key in ("path", "ids"):
            value = opts.get(key)
            if key == "path" and not _given(value):
                raise UserError("encoder=precomputed needs encoder.path=/path/to/embeddings.npy")
            if _given(value) and not Path(str(value)).is_file():
                raise UserError(f"encoder.{key}={value}: no such file")
    if opts["kind"] in PRETRAINED_ENCODERS:
        weights = opts.get("weights")
        if weights in (None, "", "???"):
            raise UserError(
                "this encoder needs its pretrained weights, which are never downloaded: pass "
                "encoder.weights=/path/to/file"
            )
        if not Path(str(weights)).is_file():
            raise UserError(f"encoder.weights={weights}: no such file")


def check_clustering(node: DictConfig) -> None:
    from coreset_lab.clustering import parse_config

    parse_config(plain(node))  # method, options and values of kmeans, temi and oracle


# --- against the data -----------------------------------------------------------------------


def check_engines(cfg: DictConfig, data: DataBundle) -> None:
    """trainer.engine=fast needs an in-memory split on one device (use_fast_engine says so)."""
    from coreset_lab.services.context import scoring_recipe
    from coreset_lab.training.fast import use_fast_engine

    use_fast_engine(Recipe.from_config(cfg.trainer), data)
    scoring, _ = scoring_recipe(cfg.trainer)
    fast = use_fast_engine(scoring, data)
    unseen = cfg.get("unseen") or {}
    if str(cfg.protocol.name) == "unseen" and unseen.get("batched") and not fast:
        raise UserError(
            "unseen.batched=true needs the fast engine: an in-memory dataset (not an image "
            "folder), trainer.devices=1 and trainer.engine=auto or fast"
        )


def check_unseen_data(cfg: DictConfig, selector: Selector, data: DataBundle) -> None:
    from coreset_lab.protocols.folds import check_folds
    from coreset_lab.protocols.incremental import stage_sizes
    from coreset_lab.protocols.unseen import UnseenConfig

    config = UnseenConfig.from_cfg(cfg.get("unseen"))
    labels = data.train_targets
    check_folds(config.folds, labels)
    budget = coreset_size(len(labels), selector.prune_rate)
    stage_sizes(budget, config.stages, config.initial_fraction, config.schedule)


def check_cluster_count(cfg: DictConfig, scorer: Scorer, data: DataBundle) -> None:
    from coreset_lab.protocols.label_free import pseudo_class_count

    n = len(data.train)
    k = pseudo_class_count(cfg.clustering, data)  # num_clusters on unlabelled data: check_labels
    check_int(k, "clustering.num_clusters", 1, n)
    if getattr(scorer, "num_clusters", None) is not None:
        check_int(scorer.num_clusters, "scorer.num_clusters", 1, n)


LABEL_FREE_METHODS = "method=elfs, d2, prototypicality or random"


@dataclass(frozen=True)
class Labels:
    """What a dataset offers to whatever reads ground truth: train labels, a test split."""

    name: str
    labelled: bool
    has_test: bool

    @classmethod
    def of(cls, data: DataBundle) -> Labels:
        return cls(data.name, data.labelled, data.test is not None)


# Datasets that never have labels: refused combinations are found before their images load.
POOLS = ("unlabelled_folder", "path_list")


def check_labels(cfg: DictConfig, components: Components, labels: Labels) -> None:
    """What the run reads against what the data has: without labels only the label-free
    protocol or a random selection, with the pseudo-class count given; evaluate=true,
    method=full (nothing but an evaluation) and elfs.beta_truth need labels and a test split
    (evaluate=auto stops after selection without them)."""
    if not labels.labelled:
        check_label_free(cfg, components, labels.name)
    if labels.labelled and labels.has_test:
        return
    lacks = "test split" if labels.labelled else "labels"
    wants = [
        "evaluate=true" if cfg.get("evaluate", "auto") is True else "",
        "method=full" if str(cfg.protocol.name) == "full" else "",
        "elfs.beta_truth=true" if (cfg.get("elfs") or {}).get("beta_truth") else "",
    ]
    wants = [w for w in wants if w]
    if wants:
        raise UserError(
            f"{' and '.join(wants)} trains a target model on labels and tests it, and dataset "
            f"{labels.name} has no {lacks}: use evaluate=auto or false (selection only)"
        )


def check_label_free(cfg: DictConfig, components: Components, name: str) -> None:
    """Without labels: the label-free protocol with a label-free clustering and k given, or a
    random selection (method=random, under the fitting protocol, reads no label)."""
    from coreset_lab.clustering import reads_labels
    from coreset_lab.selection import RandomSelector

    protocol = str(cfg.protocol.name)
    plain_random = not components.scorer.needs and isinstance(components.selector, RandomSelector)
    if protocol not in ("elfs", "fitting") or (protocol == "fitting" and not plain_random):
        what = "method=full" if protocol == "full" else f"protocol={protocol}"
        raise UserError(
            f"dataset {name} has no labels, and {what} needs them (it trains on ground-truth "
            f"labels): use a label-free method, {LABEL_FREE_METHODS}"
        )
    if protocol != "elfs":
        return
    if reads_labels(cfg.clustering):
        raise UserError(
            f"clustering={cfg.clustering.method} reads ground-truth labels, and dataset {name} "
            f"has none: use clustering=kmeans or temi"
        )
    if not cfg.clustering.get("num_clusters"):
        raise UserError(
            f"dataset {name} has no labels, so no class count for the pseudo-labels: set "
            f"clustering.num_clusters=K (the number of kinds of images you expect)"
        )


def check_precomputed(cfg: DictConfig, data: DataBundle) -> None:
    """Bring-your-own embeddings: one row per train sample, found before any work."""
    from coreset_lab.embedding import resolve_options
    from coreset_lab.embedding.precomputed import locate

    opts = resolve_options(cfg.encoder)
    if opts["kind"] == "precomputed":
        locate(opts, data)


def check_class_balance(selector: Selector, data: DataBundle) -> None:
    """A class-balanced top-k needs a budget of at least one sample per class."""
    if not getattr(selector, "class_balanced", False):
        return
    budget = coreset_size(len(data.train), selector.prune_rate)
    if budget < data.num_classes:
        raise UserError(
            f"selector.class_balanced=true needs at least one sample per class: the budget of "
            f"{budget} (from selector.prune_rate) is smaller than the {data.num_classes} classes; "
            f"lower selector.prune_rate or set selector.class_balanced=false"
        )


__all__ = ["Components", "build", "check_against_data", "check_config"]
