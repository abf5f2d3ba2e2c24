"""Collect results.json files below a directory into rows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from coreset_lab.report.table import rate_of

log = logging.getLogger(__name__)


def gather(root: str | Path) -> list[dict]:
    rows = []
    for path in sorted(Path(root).rglob("results.json")):
        try:
            row = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            log.warning("skipping unreadable %s: %s", path, err)
            continue
        row["_path"] = str(path.parent)
        rows.append(row)
    return latest_per_run(rows)


def latest_per_run(rows: list[dict]) -> list[dict]:
    """One row per (dataset, method, prune rate, seed): a rerun replaces, never double-counts.

    The `full` method ignores the prune rate, so it is keyed at rate 0 whatever its sweep said.
    """
    keep: dict[tuple, dict] = {}
    for row in rows:
        key = (row["dataset"], row["method"], rate_of(row), row["seed"])
        if key in keep and keep[key].get("status", "ok") == "ok" and row.get("status") == "failed":
            continue  # a failed retry does not hide a finished run
        keep[key] = row  # sorted paths: later wins
    return list(keep.values())
