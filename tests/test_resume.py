"""Kill a real run at several points (SIGKILL), start it again with the same command, and get
exactly what an uninterrupted run gets."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import subprocess_env

ARGS = [
    "trainer=debug",
    "trainer.proxy_epochs=8",
    "trainer.target_iterations=120",
    "trainer.checkpoint_every_steps=1",
    "scorer=aum",
    "logger=none",
]


def _cmd(store: Path, out: Path, engine: str = "auto") -> list[str]:
    return [
        sys.executable,
        "-m",
        "coreset_lab",
        *ARGS,
        f"trainer.engine={engine}",
        f"paths.store_dir={store}",
        f"hydra.run.dir={out}",
    ]


def _run(store: Path, out: Path, engine: str = "auto") -> dict:
    r = subprocess.run(
        _cmd(store, out, engine), capture_output=True, text=True, timeout=600, env=subprocess_env()
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return {
        "result": json.loads((out / "results.json").read_text()),
        "coreset": np.load(out / "coreset.npy"),
        "scores": np.load(out / "scores.npy"),
    }


def _kill_when(store: Path, out: Path, ready, engine: str) -> None:
    proc = subprocess.Popen(
        _cmd(store, out, engine),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(),
    )
    deadline = time.time() + 300
    while not ready(store) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before the kill point was reached"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _checkpoint_in(stage: str):
    # fast-last.pt: the fast engine's (the default on in-memory data), last.ckpt: Lightning's
    return lambda store: any((store / stage).glob(".*.partial/.scratch/*last.*"))


def _finished(stage: str):
    return lambda store: any((store / stage).glob("*/artifact.json"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return _run(root / "store", root / "run")


@pytest.mark.parametrize(
    "engine, kill_point",
    [
        ("fast", _checkpoint_in("scoring_model")),  # during proxy training
        ("fast", _finished("scoring_model")),  # between stages: proxy stored, target not done
        ("fast", _checkpoint_in("evaluation")),  # during target training
        # Lightning writes its checkpoint only when a training is over (see fit.py): these kill
        # between the end of a training and its artifact; the slow tier runs them.
        pytest.param("lightning", _checkpoint_in("scoring_model"), marks=pytest.mark.slow),
        pytest.param("lightning", _checkpoint_in("evaluation"), marks=pytest.mark.slow),
    ],
    ids=[
        "during-proxy-training",
        "between-stages",
        "during-target-training",
        "lightning-during-proxy-training",
        "lightning-during-target-training",
    ],
)
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, reference, engine, kill_point):
    """The reference ran on the fast engine: on the CPU both engines compute the same numbers."""
    store = tmp_path / "store"
    _kill_when(store, tmp_path / "killed", kill_point, engine)
    resumed = _run(store, tmp_path / "resumed", engine)
    np.testing.assert_array_equal(resumed["coreset"], reference["coreset"])
    np.testing.assert_allclose(resumed["scores"], reference["scores"], rtol=1e-5, atol=1e-6)
    assert resumed["result"]["test_accuracy"] == reference["result"]["test_accuracy"]
    # nothing half-written was left behind as if it were valid
    assert not list(store.rglob("*.corrupt-*"))
