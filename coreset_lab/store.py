"""Content-addressed artifact store: one directory per (stage, everything that determines it).

A sweep of prune rates x seeds trains each proxy once per seed because the proxy's key does not
contain the prune rate. An artifact is built in ``.<key>.partial`` under a file lock (two jobs never
build it at once), then renamed into place with a manifest of its files' sizes and checksums, so a
reader sees a whole, verified artifact or none. Files a builder puts in ``<path>/.scratch``
(training checkpoints) survive a crash for the next attempt to resume from, and are dropped when
the artifact is finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

import coreset_lab

MANIFEST = "artifact.json"
SCRATCH = ".scratch"
log = logging.getLogger(__name__)


def digest(obj: Any) -> str:
    """Stable short hash of a JSON-able spec (numpy arrays are hashed by their bytes)."""
    h = hashlib.sha256()
    h.update(json.dumps(obj, sort_keys=True, default=_jsonable).encode())
    return h.hexdigest()[:20]


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tobytes"):  # numpy arrays: hash of dtype, shape and content
        return f"array:{x.dtype}:{x.shape}:{hashlib.sha256(x.tobytes()).hexdigest()}"
    return str(x)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def problem_with(path: Path) -> str | None:
    """Why the artifact at ``path`` cannot be trusted, or None if it is whole."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
    except FileNotFoundError:
        return "no manifest (an unfinished or foreign directory)"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"unreadable manifest ({err})"
    for name, meta in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != meta["bytes"]:
            return f"{name} has {f.stat().st_size} bytes, expected {meta['bytes']} (truncated?)"
        if file_sha256(f) != meta["sha256"]:
            return f"{name} does not match its checksum"
    return None


class ArtifactStore:
    def __init__(self, root: str | Path | None):
        # root=None: caching off; artifacts live in a private directory removed with the store.
        self._tmp = None if root else tempfile.TemporaryDirectory(prefix="coreset-lab-store-")
        self.root = Path(root if root else self._tmp.name)
        self.built: list[str] = []
        self.reused: list[str] = []

    def path(self, stage: str, spec: dict) -> Path:
        return self.root / stage / digest(spec)

    def has(self, stage: str, spec: dict) -> bool:
        """Whether a whole, verified artifact for (stage, spec) is there now."""
        path = self.path(stage, spec)
        return path.exists() and problem_with(path) is None

    def get_or_build(self, stage: str, spec: dict, build: Callable[[Path], None]) -> Path:
        final = self.path(stage, spec)
        name = f"{stage}/{final.name}"
        if final.exists() and problem_with(final) is None:
            self.reused.append(name)
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if final.exists():
                problem = problem_with(final)
                if problem is None:  # another process built it while we waited
                    self.reused.append(name)
                    return final
                self._quarantine(final, problem)
            self._build(stage, spec, final, build)
        self.built.append(name)
        return final

    def _quarantine(self, path: Path, problem: str) -> None:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        log.warning(
            "artifact %s is not valid (%s): moved to %s and rebuilding", path, problem, aside
        )
        os.replace(path, aside)

    def _build(self, stage: str, spec: dict, final: Path, build: Callable[[Path], None]) -> None:
        partial = final.with_name(f".{final.name}.partial")
        partial.mkdir(exist_ok=True)
        for leftover in partial.iterdir():  # half-written outputs of a crashed attempt
            if leftover.name != SCRATCH:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        build(partial)
        shutil.rmtree(partial / SCRATCH, ignore_errors=True)
        files = {
            f.name: {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
            for f in sorted(partial.iterdir())
            if f.is_file()
        }
        manifest = {
            "stage": stage,
            "spec": spec,
            "files": files,
            "coreset_lab": coreset_lab.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        tmp = partial / f".{MANIFEST}.{uuid.uuid4().hex[:6]}"
        tmp.write_text(json.dumps(manifest, default=_jsonable, indent=1))
        os.replace(tmp, partial / MANIFEST)
        os.replace(partial, final)
