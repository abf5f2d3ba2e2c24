"""Method identity: what a run computes, derived in one place from its resolved config.

Every result carries
* `method`: a readable label. The paper presets keep their short names (`random`, `full`,
  `el2n`, `aum`, `forgetting`, `margin`, `entropy`, `least_confidence`, `tdds`, `ccs`,
  `elfs[<encoder>]`, `d2[<encoder>]`, `prototypicality[<encoder>]`, `unseen-s<T>-<scorer>`);
  any other combination spells out what differs (`ccs(el2n)`, `el2n-easy`,
  `unseen-s1-margin-easy`, `elfs(forgetting)[pca]`, `lf-aum[pca]`, ...). The label is derived
  from the scorer, selector and protocol the config resolves to, never from the preset's name, so
  `method=tdds scorer=margin` is labelled `margin` (top-k margin is what it computes).
* `identity`: the resolved config entries the run's computation reads, and nothing else: no
  seed, paths, logger, cache, task name or paper, no option that only changes speed or
  visibility, and nothing the protocol provably ignores (protocol=full reads no scorer, selector
  or prune rate; a random selection under fitting/elfs reads no scorer, encoder or clustering).
* `method_id`: a short hash of `identity` (two runs with the same id and seed computed the same
  thing), and `cell_id`: the same without the prune rate (one row of a table).

Labels do not need to be unique across every option (the report splits a label whose runs have
several `cell_id`s and names the keys that differ); they must name the scorer, selector and
protocol truthfully, which tests/test_identity.py and tests/test_experiments.py check.
"""

from __future__ import annotations

import copy
import hashlib
import json
import numbers
from dataclasses import dataclass
from pathlib import PurePath

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from coreset_lab.errors import UserError
from coreset_lab.speed_only import SPEED_ONLY

# A method's identity also leaves out `deterministic`, which only pins the last bits on a GPU
# (the store keys it: a stored result must be bitwise the one it stands for).
TRAINER_SPEED_ONLY = SPEED_ONLY | {"deterministic"}
# Encoder options of the same kind. A frozen encoder's batch size only batches inference;
# SimCLR's is its contrastive batch, which changes what it learns (see `_encoder`).
ENCODER_SPEED_ONLY = frozenset({"num_workers", "device", "accelerator", "progress", "release"})
CLUSTERING_SPEED_ONLY = frozenset({"accelerator"})
UNSEEN_SPEED_ONLY = frozenset({"workers", "batched"})
# Only the stage schedule reads these; with stages=1 there is no schedule.
UNSEEN_STAGED_ONLY = frozenset({"initial_fraction", "schedule"})
# Named datasets are the same data wherever they live; an image folder is its location (a list or
# array file: its `path`, kept as any other option).
DATASET_LOCATION = frozenset({"root", "download"})
LOCATED_BY_ROOT = ("image_folder", "unlabelled_folder")
# Protocols under which a random selection is the same computation: it reads only the seed and
# N (UNSEEN's stages and class quotas make its random additions depend on the scoring models).
RANDOM_IS_PLAIN = ("fitting", "elfs")
ID_LENGTH = 12


@dataclass(frozen=True)
class MethodIdentity:
    label: str
    identity: dict
    method_id: str
    cell_id: str

    def as_result(self) -> dict:
        """The fields results.json carries (`method` stays the label, as before)."""
        return {
            "method": self.label,
            "method_id": self.method_id,
            "cell_id": self.cell_id,
            "identity": self.identity,
        }


def identify(cfg: DictConfig, choices: dict | None = None) -> MethodIdentity:
    from coreset_lab.store.fingerprint import code_fingerprint

    # Runs of the same config by different code (an edit mid-sweep) never share a cell either.
    ident = {**computation(cfg), "code": code_fingerprint("all")}
    row = fingerprint(row_of(ident))
    return MethodIdentity(label(cfg, choices), ident, fingerprint(ident), row)


# --- names ----------------------------------------------------------------------------------


def component_class(node: DictConfig) -> type:
    """The class a scorer/selector node instantiates."""
    target = node.get("_target_")
    try:
        return get_class(str(target))
    except Exception as err:  # hydra wraps import errors in several types
        raise UserError(f"cannot import {target!r} (_target_ of a scorer/selector)") from err


def _registered_name(cls: type, registry: dict[str, type]) -> str:
    for name, registered in registry.items():
        if registered is cls:
            return name
    return cls.__name__.lower()  # a class of the user's own: its name says what it is


def scorer_name(cfg: DictConfig) -> str:
    from coreset_lab.scoring import SCORERS  # here: the report compares identities without them

    return _registered_name(component_class(cfg.scorer), SCORERS)


def selector_name(cfg: DictConfig) -> str:
    from coreset_lab.selection import SELECTORS

    return _registered_name(component_class(cfg.selector), SELECTORS)


def encoder_name(cfg: DictConfig, choices: dict | None) -> str:
    """The encoder as the user chose it (`encoder=dino_vitb16`), else what its config says."""
    chosen = (choices or {}).get("encoder")
    if chosen:
        return str(chosen)
    enc = cfg.get("encoder") or {}
    return str(enc.get("name") or enc.get("kind") or "?")


# --- the label ------------------------------------------------------------------------------


def label(cfg: DictConfig, choices: dict | None = None) -> str:
    protocol = str(cfg.protocol.name)
    if protocol == "full":
        return "full"
    scorer, selector = scorer_name(cfg), selector_name(cfg)
    if protocol == "unseen":
        return unseen_label(cfg, scorer, selector)
    if selector == "random" and protocol in RANDOM_IS_PLAIN:
        return "random"
    if protocol == "elfs":
        return label_free_label(cfg, scorer, selector, encoder_name(cfg, choices))
    base = supervised_label(cfg, scorer, selector)
    return base if protocol == "fitting" else f"{protocol}:{base}"


def _topk_suffix(cfg: DictConfig) -> str:
    sel = cfg.selector
    easy = "-easy" if sel.get("keep", "hard") == "easy" else ""
    return easy + ("-balanced" if sel.get("class_balanced") else "")


def supervised_label(cfg: DictConfig, scorer: str, selector: str) -> str:
    """Fitting protocol: top-k hard is named after its scorer, CCS over AUM is `ccs`."""
    if selector == "random":
        return "random"
    if selector == "topk":
        # top-k of random scores is a random coreset, but not the `random` selector's draw
        name = "topk(random)" if scorer == "random" else scorer
        return name + _topk_suffix(cfg)
    if selector == "ccs":
        return "ccs" if scorer == "aum" else f"ccs({scorer})"
    return f"{selector}({scorer})"


# The label-free methods of the ELFS paper: (selector, scorer of the paper's version) -> name.
LABEL_FREE = {"double_end": ("elfs", "aum"), "d2": ("d2", "prototypicality")}


def label_free_label(cfg: DictConfig, scorer: str, selector: str, encoder: str) -> str:
    """`name[encoder]`: options go before the bracket, so the paper lookup (which strips the
    bracket) never matches a variant that is not the paper's method."""
    if selector in LABEL_FREE:
        name, paper_scorer = LABEL_FREE[selector]
        base = name if scorer == paper_scorer else f"{name}({scorer})"
    elif selector == "topk" and scorer == "prototypicality":
        base = "prototypicality" + _topk_suffix(cfg)
    else:  # a supervised recipe run on pseudo-labels: not the supervised method of that name
        base = "lf-" + supervised_label(cfg, scorer, selector)
    clustering = cfg.get("clustering") or {}
    if clustering.get("method") == "oracle":  # a diagnostic that reads ground-truth labels
        noise = clustering.get("noise", 0.0)
        base += f"-oracle{noise:g}" if isinstance(noise, int | float) else f"-oracle{noise}"
    return f"{base}[{encoder}]"


def unseen_label(cfg: DictConfig, scorer: str, selector: str) -> str:
    """`unseen-s<T>-<scorer>` for top-k hard (the paper's setting); any other selector and the
    non-default switches are appended."""
    opts = cfg.get("unseen") or {}
    name = f"unseen-s{opts.get('stages', 1)}-{scorer}"
    name += _topk_suffix(cfg) if selector == "topk" else f"-{selector}"
    if opts.get("mode", "fold") != "fold":
        name += f"-{opts.get('mode')}"
    if opts.get("class_aware"):
        name += "-classaware"
    return name


# --- what the computation reads -------------------------------------------------------------


def plain(node) -> dict:
    if node is None:
        return {}
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    return copy.deepcopy(dict(node))


def _file_name(value):
    """A weights file enters by its name: the same file mounted elsewhere is the same method."""
    if isinstance(value, str) and value not in ("", "???"):
        return PurePath(value).name
    return value


def _dataset(cfg: DictConfig) -> dict:
    from coreset_lab.data.registry import canonical_name  # not at import: the report needs none

    d = plain(cfg.dataset)
    try:
        d["name"] = canonical_name(d.get("name"))  # "CIFAR-10" and "cifar10" are one dataset
    except UserError:
        pass  # validate.py refuses it before a run; a label is still derived
    keep_root = d.get("name") in LOCATED_BY_ROOT
    drop = DATASET_LOCATION - ({"root"} if keep_root else set())
    return {k: v for k, v in d.items() if k not in drop}


def _model(cfg: DictConfig) -> dict:
    m = plain(cfg.model)
    kwargs = m.get("kwargs") or {}
    if "weights" in kwargs:
        kwargs["weights"] = _file_name(kwargs["weights"])
    return m


def _trainer(cfg: DictConfig, scoring_models: bool) -> dict:
    """The target recipe; the scoring recipe (proxy epochs, `trainer.scoring` overrides) only
    when the run trains scoring models."""
    t = {k: v for k, v in plain(cfg.trainer).items() if k not in TRAINER_SPEED_ONLY}
    overrides = t.pop("scoring", None) or {}
    if scoring_models:
        overrides = {
            k: v for k, v in overrides.items() if v is not None and k not in TRAINER_SPEED_ONLY
        }
        if overrides:
            t["scoring"] = overrides
    else:
        t.pop("proxy_epochs", None)
    return t


def _encoder(cfg: DictConfig) -> dict:
    e = plain(cfg.get("encoder"))
    drop = ENCODER_SPEED_ONLY | (set() if e.get("kind") == "simclr" else {"batch_size"})
    e = {k: v for k, v in e.items() if k not in drop}
    for key in ("weights", "path", "ids"):  # precomputed embeddings: their file and order file
        if key in e:
            e[key] = _file_name(e[key])
    return e


def _unseen(cfg: DictConfig) -> dict:
    u = {k: v for k, v in plain(cfg.get("unseen")).items() if k not in UNSEEN_SPEED_ONLY}
    if u.get("stages", 1) == 1:
        u = {k: v for k, v in u.items() if k not in UNSEEN_STAGED_ONLY}
    return u


def _beta_search(cfg: DictConfig, ident: dict) -> None:
    """ELFS' label-free β search replaces selector.beta; only double-end selection has one."""
    elfs = plain(cfg.get("elfs"))
    if selector_name(cfg) != "double_end":
        return
    if not elfs.get("beta_search"):
        ident["elfs"] = {"beta_search": False}  # names the switch when the report compares
        return
    ident["selector"].pop("beta", None)
    ident["elfs"] = {k: v for k, v in elfs.items() if k != "beta_truth"}  # a report-only diagnostic


def trains_scoring_models(cfg: DictConfig) -> bool:
    protocol = str(cfg.protocol.name)
    if protocol == "full":
        return False
    if protocol == "unseen":  # scorers that train no model are refused there (validate.py)
        return True
    from coreset_lab.protocols.fitting import TRAINED  # what a scoring model's training yields

    return bool(component_class(cfg.scorer).needs & TRAINED)


def computation(cfg: DictConfig) -> dict:
    """The resolved config entries this run's computation reads (see the module docstring)."""
    protocol = str(cfg.protocol.name)
    ident = {"dataset": _dataset(cfg), "model": _model(cfg)}
    if protocol == "full":
        return {**ident, "protocol": {"name": "full"}, "trainer": _trainer(cfg, False)}
    if selector_name(cfg) == "random" and protocol in RANDOM_IS_PLAIN:
        return {**ident, "trainer": _trainer(cfg, False), "selector": plain(cfg.selector)}
    ident.update(
        protocol=plain(cfg.protocol),
        trainer=_trainer(cfg, trains_scoring_models(cfg)),
        scorer=plain(cfg.scorer),
        selector=plain(cfg.selector),
    )
    if ident["selector"].get("beta_by_rate") is not None:
        ident["selector"].pop("beta", None)  # the table's entry for the rate is the β used
    if protocol == "unseen":
        ident["unseen"] = _unseen(cfg)
    if protocol == "elfs":
        ident.update(encoder=_encoder(cfg), clustering=_clustering(cfg))
        _beta_search(cfg, ident)
    return ident


def _clustering(cfg: DictConfig) -> dict:
    c = plain(cfg.get("clustering"))
    return {k: v for k, v in c.items() if k not in CLUSTERING_SPEED_ONLY}


def row_of(ident: dict) -> dict:
    """The identity of a table row: the method at every prune rate."""
    out = copy.deepcopy(ident)
    out.get("selector", {}).pop("prune_rate", None)
    return out


# --- hashing --------------------------------------------------------------------------------


def _canonical(value):
    """1 and 1.0 (or `lr: 1` and `lr=1.0`) are the same value; tuples are lists."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def fingerprint(ident: dict) -> str:
    text = json.dumps(_canonical(ident), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


# --- comparing identities (the report) ------------------------------------------------------


def flatten(ident: dict, prefix: str = "") -> dict[str, object]:
    """{"trainer": {"lr": 0.1}} -> {"trainer.lr": 0.1}: config keys as a user types them."""
    out: dict[str, object] = {}
    for key, value in ident.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def differing_keys(identities: list[dict]) -> list[str]:
    """The config keys whose values are not the same in every identity (absent counts)."""
    flat = [flatten(i) for i in identities]
    keys = sorted(set().union(*flat)) if flat else []
    return [k for k in keys if len({_text(f.get(k, ABSENT)) for f in flat}) > 1]


ABSENT = "(absent)"


def _text(value) -> str:
    return json.dumps(_canonical(value), sort_keys=True, default=str)
