"""Collect results.json files below one or more directories into rows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from coreset_lab.report.table import rate_of

log = logging.getLogger(__name__)


def gather(*roots: str | Path) -> list[dict]:
    """Every results.json below `roots` (e.g. the two sweeps of one UNSEEN table), one row per
    run of each computation."""
    rows = []
    paths = sorted(p for root in roots for p in Path(root).rglob("results.json"))
    for path in paths:
        try:
            row = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            log.warning("skipping unreadable %s: %s", path, err)
            continue
        if row.get("status", "ok") == "ok" and row.get("test_accuracy") is None:
            continue  # a selection-only run (evaluate=false) has no cell to fill
        row["_path"] = str(path.parent)
        rows.append(row)
    return latest_per_run(rows)


def run_key(row: dict) -> tuple:
    """What a row is a run of: its computation (`method_id`) and seed. Results written before
    identities existed fall back to what they carry: dataset, label, prune rate and seed."""
    if row.get("method_id"):
        return ("id", row["method_id"], row["seed"])
    return ("legacy", row["dataset"], row["method"], rate_of(row), row["seed"])


def latest_per_run(rows: list[dict]) -> list[dict]:
    """One row per run key: a rerun replaces, never double-counts, and the same computation
    reached from two sweeps (`full` at every prune rate, `random` beside every encoder) counts
    once."""
    keep: dict[tuple, dict] = {}
    for row in rows:
        key = run_key(row)
        if key in keep and keep[key].get("status", "ok") == "ok" and row.get("status") == "failed":
            continue  # a failed retry does not hide a finished run
        keep[key] = row  # sorted paths: later wins
    return list(keep.values())
