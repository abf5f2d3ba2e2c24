"""The artifact store: keys, atomic builds, integrity checks, quarantine of bad artifacts."""

import json
import logging
import os
import socket
import threading

import numpy as np
import pytest

import coreset_lab.store.artifacts as store_module
from coreset_lab.store.artifacts import MANIFEST, SCRATCH, ArtifactStore, digest, problem_with


def _builder(calls, value=1.0):
    def build(path):
        calls.append(path)
        np.save(path / "x.npy", np.full(1000, value))
        (path / SCRATCH).mkdir(exist_ok=True)
        (path / SCRATCH / "last.ckpt").write_text("checkpoint")

    return build


def test_keys_depend_on_content_including_arrays():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"x": np.arange(3)}) != digest({"x": np.arange(1, 4)})
    assert digest({"x": np.arange(3)}) != digest({"x": np.arange(3).astype(np.int32)})


def test_build_once_then_reuse_with_manifest_and_no_scratch(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    p1 = store.get_or_build("stage", {"k": 1}, _builder(calls))
    p2 = store.get_or_build("stage", {"k": 1}, _builder(calls))
    assert p1 == p2 and len(calls) == 1
    assert store.built == store.reused == [f"stage/{p1.name}"]
    manifest = json.loads((p1 / MANIFEST).read_text())
    assert set(manifest["files"]) == {"x.npy"} and manifest["spec"]["k"] == 1
    assert manifest["key"] == p1.name and {"_code", "_version", "_environment"} <= set(
        manifest["spec"]
    )
    assert not (p1 / SCRATCH).exists() and problem_with(p1) is None


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: (p / "x.npy").write_bytes((p / "x.npy").read_bytes()[:100]), "truncated"),
        (lambda p: (p / "x.npy").write_bytes(b"\0" * (p / "x.npy").stat().st_size), "checksum"),
        (lambda p: (p / MANIFEST).unlink(), "no manifest"),
        (lambda p: (p / MANIFEST).write_text("{not json"), "unreadable manifest"),
        (lambda p: (p / "x.npy").unlink(), "missing"),
    ],
    ids=["truncated", "same-size-garbage", "foreign-dir", "bad-manifest", "missing-file"],
)
def test_damaged_artifacts_are_reported_quarantined_and_rebuilt(tmp_path, damage, reason, caplog):
    store, calls = ArtifactStore(tmp_path), []
    path = store.get_or_build("stage", {"k": 1}, _builder(calls))
    damage(path)
    assert reason in problem_with(path)
    again = ArtifactStore(tmp_path).get_or_build("stage", {"k": 1}, _builder(calls, 2.0))
    assert again == path and len(calls) == 2 and problem_with(path) is None
    assert np.load(path / "x.npy")[0] == 2.0  # rebuilt, the damaged copy never read
    assert len(list(path.parent.glob(f"{path.name}.corrupt-*"))) == 1  # kept for inspection
    assert "not valid" in caplog.text


def test_a_crashed_build_keeps_only_its_scratch_for_the_next_attempt(tmp_path):
    store = ArtifactStore(tmp_path)
    seen = []

    def crash(path):
        (path / SCRATCH).mkdir(exist_ok=True)
        (path / SCRATCH / "last.ckpt").write_text("epoch 3")
        (path / "half.npy").write_bytes(b"half")
        raise KeyboardInterrupt

    def resume(path):
        seen.append(sorted(p.name for p in path.iterdir()))
        seen.append((path / SCRATCH / "last.ckpt").read_text())
        np.save(path / "x.npy", np.zeros(3))

    with pytest.raises(KeyboardInterrupt):
        store.get_or_build("stage", {"k": 2}, crash)
    assert not store.path("stage", {"k": 2}).exists()  # nothing half-written in place
    store.get_or_build("stage", {"k": 2}, resume)
    assert seen == [[SCRATCH], "epoch 3"]  # the half file is gone, the checkpoint is there


def test_a_run_waiting_for_a_lock_says_for_what_and_for_whom(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(store_module, "LOCK_NOTICE_SECONDS", 0.1)
    store = ArtifactStore(tmp_path)
    final = store.path("stage", {"k": 3})
    final.parent.mkdir(parents=True)
    held, release = threading.Event(), threading.Event()

    def other_builder():  # holds the artifact's lock as another process would
        with store.lock(final, "stage"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=other_builder)
    thread.start()
    held.wait(10)
    threading.Timer(0.5, release.set).start()
    with caplog.at_level(logging.INFO, logger="coreset_lab.store.artifacts"):
        ArtifactStore(tmp_path).get_or_build("stage", {"k": 3}, _builder([]))
    thread.join()
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert waits and f"stage/{final.name}" in waits[0]
    assert f"{socket.gethostname()} pid {os.getpid()}" in waits[0]
