"""Method identity: what a run computes, derived in one place from its resolved config.

Every result carries
* `method`: a readable label. The paper presets keep their short names (`random`, `full`,
  `el2n`, `aum`, `forgetting`, `margin`, `entropy`, `least_confidence`, `tdds`, `ccs`,
  `grand`, `dynunc`, `elfs[<encoder>]`, `d2[<encoder>]`, `prototypicality[<encoder>]`,
  `kcenter[<encoder>]`, `moderate[<encoder>]`, `unseen-s<T>-<scorer>`, `badge`);
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

from omegaconf import DictConfig, OmegaConf

from coreset_lab.errors import UserError
from coreset_lab.speed_only import SPEED_ONLY

# A method's identity also leaves out `deterministic`, which only pins the last bits on a GPU
# (the store keys it: a stored result must be bitwise the one it stands for).
TRAINER_SPEED_ONLY = SPEED_ONLY | {"deterministic"}
# Named datasets are the same data wherever they live; an image folder is its location (a list or
# array file: its `path`, kept as any other option).
DATASET_LOCATION = frozenset({"root", "download"})
LOCATED_BY_ROOT = ("image_folder", "unlabelled_folder")
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


def identify(cfg: DictConfig, choices: dict | None = None, parts=None) -> MethodIdentity:
    """The run's label and identity from its built scorer, selector and protocol (`parts`, from
    run/checks.py; built here when not given)."""
    from coreset_lab.store.fingerprint import code_fingerprint

    if parts is None:
        from coreset_lab.protocols.base import build_protocol
        from coreset_lab.registry import instantiate

        parts = _Parts(
            instantiate(cfg.scorer), instantiate(cfg.selector), build_protocol(cfg.protocol)
        )
    # Runs of the same config by different code (an edit mid-sweep) never share a cell either.
    ident = {**computation(cfg, parts), "code": code_fingerprint("all")}
    row = fingerprint(row_of(ident))
    return MethodIdentity(label(parts, choices), ident, fingerprint(ident), row)


@dataclass(frozen=True)
class _Parts:
    scorer: object
    selector: object
    protocol: object


def label(parts, choices: dict | None = None) -> str:
    """The protocol names what it computed (see the module docstring); a random selection that
    reads nothing but the seed is `random` under every protocol that passes it through."""
    from coreset_lab.protocols.fitting import random_selection

    protocol, scorer, selector = parts.protocol, parts.scorer, parts.selector
    if protocol.selects and protocol.random_is_plain and random_selection(selector):
        return "random"
    return protocol.label(scorer, selector, choices or {})


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
        pass  # run/checks.py refuses it before a run; a label is still derived
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


def computation(cfg: DictConfig, parts) -> dict:
    """The resolved config entries this run's computation reads (see the module docstring)."""
    from coreset_lab.protocols.fitting import random_selection

    protocol, scorer, selector = parts.protocol, parts.scorer, parts.selector
    ident = {"dataset": _dataset(cfg), "model": _model(cfg)}
    if not protocol.selects:
        return {**ident, "protocol": {"name": protocol.name}, "trainer": _trainer(cfg, False)}
    if protocol.random_is_plain and random_selection(selector):
        return {**ident, "trainer": _trainer(cfg, False), "selector": plain(cfg.selector)}
    selector_spec = plain(cfg.selector)
    if selector_spec.get("beta_by_rate") is not None:
        selector_spec.pop("beta", None)  # the table's entry for the rate is the β used
    ident.update(
        protocol={"name": protocol.name, **protocol.identity(scorer, selector)},
        trainer=_trainer(cfg, protocol.trains_scoring_models(scorer)),
        scorer=plain(cfg.scorer),
        selector=protocol.selector_identity(selector, selector_spec),
    )
    return ident


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
