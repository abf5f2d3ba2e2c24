"""The clustering contract and reading a config (a plain dict of conf/clustering/*.yaml) into it."""

from __future__ import annotations

from dataclasses import fields
from typing import ClassVar

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.values import check_int


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
        check_num_clusters(out.num_clusters)
    return out


def check_num_clusters(k: object, n: int | None = None) -> int:
    """k >= 2 (and <= n): one cluster is one pseudo-class, nothing for a proxy to tell apart."""
    try:
        return check_int(k, "clustering.num_clusters", 2, n)
    except UserError as err:
        raise UserError(f"{err} (one cluster makes a single pseudo-class)") from None


class ClusteringMethod:
    """One clustering method: its options (a dataclass registered as `clustering`, named by the
    config's `method`), checked in `from_dict`, and `run`, which returns (pseudo-labels int64
    [N], centroids float32 [k, d] or None, info)."""

    name: ClassVar[str]
    # The pseudo-labels are read off the ground truth (diagnostics, never label-free); only such
    # a method is given `truth`.
    reads_truth: ClassVar[bool] = False

    @classmethod
    def from_dict(cls, cfg: dict):
        return parse_options(cls, cfg, cls.name)

    def run(
        self, embeddings: np.ndarray | None, k: int, seed: int, truth: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, dict]:
        raise NotImplementedError
