"""One registration at each pluggable class's definition, one lookup, one error for an unknown name.

As timm's `@register_model`: a scorer, selector or protocol class names itself (`name`) and
registers where it is defined (`@register("scorer")`); configs build it from its own node with
`_target_`, and whatever needs a class by name (`build("scorer", "aum")`, the tests, the labels)
asks `lookup`. Clustering methods, encoders, datasets and models register the same way and are
looked up by the name their config gives (`method`, `kind`, `name`, `arch`). There is no other
table of names.
"""

from __future__ import annotations

import importlib
import pkgutil

from coreset_lab.errors import UserError

_TABLES: dict[str, dict[str, type]] = {}


def registered(kind: str) -> dict[str, type]:
    """name -> class of one kind, in registration order (read-only by convention)."""
    return _TABLES.setdefault(kind, {})


def register(kind: str, name: str | None = None):
    """Decorator: file a class under its own `name` (or a builder function under `name`)."""

    def add(obj):
        table = registered(kind)
        key = name or obj.__dict__.get("name")
        if not isinstance(key, str) or not key:
            raise TypeError(f"{obj.__qualname__} registers as a {kind} but declares no `name`")
        if table.get(key, obj) is not obj:
            raise TypeError(f"two {kind}s are named {key!r}: {table[key]} and {obj}")
        table[key] = obj
        return obj

    return add


def lookup(kind: str, name: object, key: str | None = None) -> type:
    """The class registered as `name`; `key` is the config key that named it, for the error."""
    table = registered(kind)
    if not isinstance(name, str) or name not in table:
        where = f" ({key}={name})" if key else ""
        raise UserError(f"unknown {kind} {name!r}{where}; known: {', '.join(table)}")
    return table[name]


def build(kind: str, name: str, **kwargs):
    """The registered class `name` built with `kwargs`; an unknown option is one line."""
    cls = lookup(kind, name)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # an unknown option: say which one, not a Python signature
        raise UserError(f"{kind} {name!r}: bad options {sorted(kwargs)} ({exc})") from None


def plain_node(node) -> dict:
    """A config node as resolved plain values; mandatory values left unset stay "???"."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    return dict(node)


def target_class(node: dict) -> type:
    from hydra.utils import get_class

    target = node.get("_target_")
    try:
        return get_class(target)
    except (ImportError, ValueError) as err:
        raise UserError(f"_target_: {target} cannot be imported ({err})") from None


def instantiate(node, key: str | None = None):
    """The object a config node names by `_target_`, built from its other entries (resolved, plain
    values: collaborators such as the encoder arrive as dicts). Mandatory values left unset
    (`encoder.weights: ???`) arrive as "???", which the constructor's own check names; an
    unknown option is one line naming it (`key.<option>`: `key` is the node's config key)."""
    import inspect

    options = plain_node(node)
    cls = target_class(options)
    name = options.pop("_target_").rsplit(".", 1)[-1]
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k in options if k not in params)
        if unknown:
            spelt = ", ".join(f"{key}.{k}" if key else k for k in unknown)
            takes = ", ".join(params) or "none"
            raise UserError(f"{name} has no option {spelt}; it takes: {takes}")
    try:
        return cls(**options)
    except TypeError as err:  # a required option missing, or one the constructor cannot take
        raise UserError(f"{name}: {err}") from None


def declared_name(cls: type) -> str:
    """The name a class declares itself; a user's class that declares none: its class name."""
    return cls.__dict__.get("name") or cls.__name__.lower()


def import_all(package: str) -> None:
    """Import every module of `package`, so that each class registers where it is defined: a new
    module dropped into the package is found without being listed anywhere."""
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{info.name}")
