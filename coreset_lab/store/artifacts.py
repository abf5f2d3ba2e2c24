"""Content-addressed artifact store: one directory per (stage, everything that determines it).

A key is the hash of a spec: the stage's config, the keys of its upstream artifacts, the contents
of the data and weights it read, and (added here, for every artifact) the code that computes the
stage and the machine it ran on (`fingerprint.py`). A sweep of prune rates x seeds trains each
proxy once per seed because the proxy's key does not contain the prune rate; editing the training
code, replacing a data file or moving to a GPU changes every key that depends on it.

An artifact is built in ``.<key>.partial`` under a file lock (two jobs never build it at once),
then renamed into place with a manifest of its spec and files (sizes and checksums). A reader
checks the manifest against the key it asked for: a directory whose spec does not hash to its
name, built by another version, or whose files are not exactly the listed ones is moved aside
(``<key>.corrupt-<time>``) and rebuilt. Files a builder puts in ``<path>/.scratch`` (training
checkpoints) survive a crash for the next attempt to resume from, and are dropped when the
artifact is finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

import coreset_lab
from coreset_lab.store.fingerprint import code_fingerprint

MANIFEST = "artifact.json"
SCRATCH = ".scratch"
LOCK_NOTICE_SECONDS = 60  # how often a waiting run says again what it waits for
log = logging.getLogger(__name__)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "dtype") and hasattr(x, "shape"):  # numpy arrays: dtype, shape and content
        import numpy as np

        arr = np.ascontiguousarray(x)
        content = hashlib.sha256(memoryview(arr).cast("B")).hexdigest()
        return f"array:{arr.dtype}:{arr.shape}:{content}"
    return str(x)


def canonical(spec: Any) -> Any:
    """The spec as plain JSON (arrays replaced by a hash of their content): what is hashed into
    the key and written to the manifest, so the manifest can be checked against its key."""
    return json.loads(json.dumps(spec, sort_keys=True, default=_jsonable))


def digest(obj: Any) -> str:
    """Stable short hash of a JSON-able spec (numpy arrays are hashed by their content)."""
    text = json.dumps(canonical(obj), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def problem_with(path: Path) -> str | None:
    """Why the artifact at ``path`` cannot be trusted as the one its name promises, or None."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files, spec = manifest["files"], manifest["spec"]
    except FileNotFoundError:
        return "no manifest (an unfinished or foreign directory)"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"unreadable manifest ({err})"
    if manifest.get("key") != path.name or digest(spec) != path.name:
        return "its spec does not hash to its key (copied or edited from another artifact)"
    if manifest.get("coreset_lab") != coreset_lab.__version__:
        return f"built by coreset-lab {manifest.get('coreset_lab')}, not {coreset_lab.__version__}"
    if not isinstance(files, dict) or not files:
        return "its manifest lists no files"
    present = {f.name for f in path.iterdir() if f.name != MANIFEST}
    if set(files) - present:
        return f"{', '.join(sorted(set(files) - present))} is missing"
    if present - set(files):
        return f"holds files its manifest does not list: {', '.join(sorted(present - set(files)))}"
    for name, meta in files.items():
        size = (path / name).stat().st_size
        if size != meta["bytes"]:
            return f"{name} has {size} bytes, expected {meta['bytes']} (truncated?)"
        if file_sha256(path / name) != meta["sha256"]:
            return f"{name} does not match its checksum"
    return None


@dataclass
class StoreLog:
    """What a run did with the store: the artifacts it built, reused and moved aside."""

    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)


class ArtifactStore:
    """`root=None`: caching off (a private directory removed with the store). `environment`:
    the machine facts every key carries. `refresh_since`: artifacts finished before this time
    (time.time()) are rebuilt once, those built since (by this run or its workers) reused."""

    def __init__(
        self,
        root: str | Path | None,
        environment: dict | None = None,
        refresh_since: float | None = None,
    ):
        self._tmp = None if root else tempfile.TemporaryDirectory(prefix="coreset-lab-store-")
        self.root = Path(root if root else self._tmp.name)
        self.environment = environment or {}
        self.refresh_since = refresh_since
        self.log = StoreLog()

    @property
    def built(self) -> list[str]:
        return self.log.built

    @property
    def reused(self) -> list[str]:
        return self.log.reused

    def built_elsewhere(self, keys: list[str]) -> None:
        """Artifacts another process of this run (a worker) built, which this one then only
        read: count them as built by the run."""
        for key in keys:
            if key in self.log.reused:
                self.log.reused.remove(key)
            self.log.built.append(key)

    def settings(self) -> dict:
        """Arguments that open the same store, with the same keys, in another process."""
        return {
            "root": str(self.root),
            "environment": self.environment,
            "refresh_since": self.refresh_since,
        }

    def spec_of(self, stage: str, spec: dict) -> dict:
        """The spec as keyed: the stage's own, plus the code and machine behind it."""
        return {
            **spec,
            "_code": code_fingerprint(stage),
            "_version": coreset_lab.__version__,
            "_environment": self.environment,
        }

    def path(self, stage: str, spec: dict) -> Path:
        return self.root / stage / digest(self.spec_of(stage, spec))

    def has(self, stage: str, spec: dict) -> bool:
        """Whether a whole, verified, current artifact for (stage, spec) is there now."""
        return self._usable(self.path(stage, spec)) is None

    def _usable(self, path: Path) -> str | None:
        """None if the artifact at `path` may be served, else why not."""
        if not path.exists():
            return "missing"
        problem = problem_with(path)
        if problem is None and self.refresh_since is not None:
            finished = json.loads((path / MANIFEST).read_text()).get("finished", 0.0)
            if finished < self.refresh_since:
                return "refresh"
        return problem

    def get_or_build(self, stage: str, spec: dict, build: Callable[[Path], None]) -> Path:
        full_spec = self.spec_of(stage, spec)
        final = self.root / stage / digest(full_spec)
        name = f"{stage}/{final.name}"
        if self._usable(final) is None:
            self.log.reused.append(name)
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with self.lock(final, name):
            problem = self._usable(final)
            if problem is None:  # another process built it while we waited
                self.log.reused.append(name)
                return final
            try:
                self._build(stage, full_spec, final, build, problem)
            except BaseException as err:  # Ctrl-C, SIGTERM: the message names what was cut
                if not hasattr(err, "building"):  # the innermost artifact's stage
                    err.building = stage
                raise
        self.log.built.append(name)
        return final

    def lock(self, final: Path, name: str) -> _Held:
        """The lock of `final` (an artifact, or any path), acquired; while waiting for it, says
        every minute who holds it."""
        lock = FileLock(str(final) + ".lock")
        owner = Path(str(final) + ".lock.owner")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            while True:
                holder = owner.read_text().strip() if owner.exists() else "another process"
                log.info("waiting for %s: it is being built by %s", name, holder)
                try:
                    lock.acquire(timeout=LOCK_NOTICE_SECONDS)
                    break
                except Timeout:
                    continue
        owner.write_text(f"{socket.gethostname()} pid {os.getpid()} since {time.ctime()}\n")
        return _Held(lock, owner)

    def _quarantine(self, path: Path, problem: str) -> None:
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        log.warning(
            "artifact %s is not valid (%s): moved to %s and rebuilding", path, problem, aside
        )
        os.replace(path, aside)
        self.log.quarantined.append(f"{path.parent.name}/{path.name}: {problem}")

    def _build(
        self, stage: str, spec: dict, final: Path, build: Callable[[Path], None], problem: str
    ) -> None:
        partial = final.with_name(f".{final.name}.partial")
        partial.mkdir(exist_ok=True)
        for leftover in partial.iterdir():  # half-written outputs of a crashed attempt
            if leftover.name != SCRATCH:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        build(partial)
        shutil.rmtree(partial / SCRATCH, ignore_errors=True)
        _write_manifest(partial, stage, spec, final.name)
        if problem == "refresh":  # asked for: the old artifact is replaced, not kept
            old = final.with_name(f".{final.name}.replaced-{uuid.uuid4().hex[:6]}")
            os.replace(final, old)
            os.replace(partial, final)
            shutil.rmtree(old, ignore_errors=True)
            return
        if problem != "missing":
            self._quarantine(final, problem)
        os.replace(partial, final)


class _Held:
    """A held FileLock that also removes the holder's note when released."""

    def __init__(self, lock: FileLock, owner: Path):
        self.lock, self.owner = lock, owner

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.owner.unlink(missing_ok=True)
        self.lock.release()


def _write_manifest(partial: Path, stage: str, spec: dict, key: str) -> None:
    files = {
        f.name: {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
        for f in sorted(partial.iterdir())
        if f.is_file() and f.name != MANIFEST
    }
    if not files:
        raise RuntimeError(f"the builder of {stage} wrote no file")  # a bug, not a user error
    manifest = {
        "stage": stage,
        "key": key,
        "spec": canonical(spec),
        "files": files,
        "coreset_lab": coreset_lab.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "finished": time.time(),
        "host": socket.gethostname(),
    }
    tmp = partial / f".{MANIFEST}.{uuid.uuid4().hex[:6]}"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, partial / MANIFEST)
