"""Build a registered class by name, with user-facing errors for unknown names and options."""

from __future__ import annotations

from coreset_lab.errors import UserError


def build_registered(kind: str, registry: dict[str, type], name: str, kwargs: dict):
    if name not in registry:
        raise UserError(f"{kind} must be one of {', '.join(registry)}; got {name!r}")
    try:
        return registry[name](**kwargs)
    except TypeError as exc:  # an unknown option: say which one, not a Python signature
        raise UserError(f"{kind} {name!r}: bad options {sorted(kwargs)} ({exc})") from None
