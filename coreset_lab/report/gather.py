"""Collect results.json files below a directory into rows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

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
    return rows
