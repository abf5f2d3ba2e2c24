"""Content-addressed artifact store: one directory per (stage, everything that determines it).

A sweep of prune rates x seeds trains each proxy once per seed because the proxy's key does not
contain the prune rate. A directory is built under a temporary name and renamed into place, so a
reader sees a whole artifact or none; a file lock keeps two processes from building the same one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

MANIFEST = "artifact.json"


def digest(obj: Any) -> str:
    """Stable short hash of a JSON-able spec (numpy arrays are hashed by their bytes)."""
    h = hashlib.sha256()
    h.update(json.dumps(obj, sort_keys=True, default=_jsonable).encode())
    return h.hexdigest()[:20]


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tobytes"):  # numpy arrays: hash of dtype, shape and content
        return f"array:{x.dtype}:{x.shape}:{hashlib.sha256(x.tobytes()).hexdigest()}"
    return str(x)


class ArtifactStore:
    def __init__(self, root: str | Path | None):
        # root=None: caching off; artifacts live in a private directory removed with the store.
        self._tmp = None if root else tempfile.TemporaryDirectory(prefix="coreset-lab-store-")
        self.root = Path(root if root else self._tmp.name)
        self.built: list[str] = []
        self.reused: list[str] = []

    def path(self, stage: str, spec: dict) -> Path:
        return self.root / stage / digest(spec)

    def get_or_build(self, stage: str, spec: dict, build: Callable[[Path], None]) -> Path:
        final = self.path(stage, spec)
        if (final / MANIFEST).exists():
            self.reused.append(f"{stage}/{final.name}")
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if (final / MANIFEST).exists():  # another process built it while we waited
                self.reused.append(f"{stage}/{final.name}")
                return final
            tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
            tmp.mkdir()
            try:
                build(tmp)
                (tmp / MANIFEST).write_text(json.dumps({"stage": stage, "spec": spec}, default=str))
                if final.exists():  # leftover without a manifest: never valid, replace it
                    shutil.rmtree(final)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        self.built.append(f"{stage}/{final.name}")
        return final
