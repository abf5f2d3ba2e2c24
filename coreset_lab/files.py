"""Files written whole or not at all: each write goes to a temporary name unique to this process
and call, then is renamed over the target (two runs sharing a run directory never collide)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np


def temp_path(path: Path, suffix: str = "") -> Path:
    """A hidden sibling of `path` no other process or call uses (`suffix`: for writers that
    insist on an extension, as np.save and PIL do)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_npy(path: Path, array: np.ndarray) -> None:
    tmp = temp_path(path, ".npy")
    np.save(tmp, array)
    os.replace(tmp, path)
