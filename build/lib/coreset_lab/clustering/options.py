"""Reading a clustering config (a plain dict from conf/clustering/*.yaml) into its dataclass."""

from __future__ import annotations

from dataclasses import fields

from coreset_lab.errors import UserError
from coreset_lab.scoring.base import check_int


def parse_options(cls, cfg: dict, method: str):
    """``cls(**cfg)`` without the ``method`` key; unknown keys and a bad k are UserErrors."""
    cfg = {k: v for k, v in cfg.items() if k != "method"}
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise UserError(
            f"clustering ({method}): unknown option(s) {unknown}; allowed: {sorted(allowed)}"
        )
    out = cls(**cfg)
    if getattr(out, "num_clusters", None) is not None:
        check_int(out.num_clusters, "clustering.num_clusters", 1)
    return out
