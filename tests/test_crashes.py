"""What happens when a run is killed, interrupted or fails in the middle: a truncated training
checkpoint, a bad job in a sweep, SIGTERM / Ctrl-C, a killed parent of UNSEEN's workers."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_lightning.loggers import Logger

from coreset_lab.data import build_dataset
from coreset_lab.models import build_model
from coreset_lab.training.budget import Budget
from coreset_lab.training.fast import save_checkpoint
from coreset_lab.training.fit import train_classifier
from coreset_lab.training.recipe import Recipe
from tests.conftest import run_cli, subprocess_env

DEBUG = ["trainer=debug", "logger=none"]
# Long enough that a run is still training its proxy when the test stops it.
LONG = [*DEBUG, "trainer.proxy_epochs=300", "trainer.checkpoint_every_steps=1"]


@pytest.fixture
def start(tmp_path):
    """Start a CLI run (run directory `name`, store tmp_path/store) with stderr in a file (orphaned
    workers would hold a pipe open); whatever still runs when the test ends is killed."""
    procs = []

    def _start(*args: str, name: str = "run") -> tuple[subprocess.Popen, Path]:
        err = tmp_path / f"{name}.stderr"
        with open(err, "w") as fh:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "coreset_lab",
                        *args,
                        f"paths.store_dir={tmp_path / 'store'}",
                        f"hydra.run.dir={tmp_path / name}",
                    ],
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=fh,
                    env=subprocess_env(),
                )  # fmt: skip
            )
        return procs[-1], err

    yield _start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the test could stop it"
    assert ready(), "the run never got there"


def _scratch_checkpoints(store: Path) -> list[Path]:
    """The fast engine's and Lightning's (not their temporary files)."""
    scratch = "scoring_model/.*.partial/.scratch"
    return [*store.glob(f"{scratch}/fast-last.pt"), *store.glob(f"{scratch}/last.ckpt")]


# --- checkpoints: truncated, and Lightning's every epoch ----------------------------------------


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits")


def _train(digits, engine: str, directory: Path | None, logger=None):
    """3 epochs of 5 steps over 300 samples, checkpointing every epoch in `directory`."""
    recipe = Recipe(
        batch_size=64, lr=0.05, accelerator="cpu", progress=False, engine=engine,
        checkpoint_every_steps=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, 8, width=8)
    return train_classifier(
        model, digits, digits.train_targets, recipe, Budget(epochs=3), indices=np.arange(300),
        seed=0, record=True, checkpoint_dir=directory, logger=logger,
    )  # fmt: skip


@pytest.mark.parametrize("engine, name", [("fast", "fast-last.pt"), ("lightning", "last.ckpt")])
def test_unreadable_checkpoint_is_moved_aside_and_training_starts_over(
    digits, tmp_path, caplog, engine, name
):
    reference = _train(digits, engine, tmp_path)  # leaves its last checkpoint behind
    checkpoint = tmp_path / name
    half = checkpoint.read_bytes()[: checkpoint.stat().st_size // 2]
    checkpoint.write_bytes(half)  # as a node that crashed before the data reached the disk
    with caplog.at_level(logging.WARNING):
        again = _train(digits, engine, tmp_path)
    warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    (aside,) = tmp_path.glob(f"{name}.corrupt-*")
    assert aside.read_bytes() == half and name in warnings[0] and aside.name in warnings[0]
    assert again.steps == reference.steps == 15  # from the start, to the same numbers
    np.testing.assert_array_equal(again.dynamics.loss, reference.dynamics.loss)
    assert not list(tmp_path.glob(".*.tmp")), "a temporary checkpoint file was left"


class _PressesCtrlC:
    """Pickled into a checkpoint: Ctrl-C comes while the checkpoint is being written."""

    def __reduce__(self):
        # raise_signal delivers to this thread at once; os.kill(getpid()) may land on one of
        # torch's threads and reach Python only later (a flake on a loaded machine)
        signal.raise_signal(signal.SIGINT)
        return (int, (1,))


def test_ctrl_c_while_a_checkpoint_is_written_waits_until_it_is_whole(tmp_path):
    path = tmp_path / "fast-last.pt"
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"weights": torch.zeros(1000), "ctrl_c": _PressesCtrlC()}, path)
    assert torch.load(path, weights_only=False)["ctrl_c"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class _InterruptAt(Logger):
    """Ctrl-C in the middle of a Lightning training, once it has passed `step`."""

    name, version = "interrupt", 0

    def __init__(self, step: int):
        super().__init__()
        self.step = step

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        if step is not None and step >= self.step:
            raise KeyboardInterrupt


def test_interrupted_lightning_training_reruns_to_the_same_numbers(digits, tmp_path):
    """Lightning hands the interrupt back instead of turning it into sys.exit(1), leaves no
    epoch-end checkpoint it would resume wrongly (see fit._epoch_checkpoints), and the rerun
    computes what an uninterrupted training computes."""
    reference = _train(digits, "lightning", None)
    with pytest.raises(KeyboardInterrupt):
        _train(digits, "lightning", tmp_path, _InterruptAt(step=8))
    assert not (tmp_path / "last.ckpt").exists()
    resumed = _train(digits, "lightning", tmp_path)
    assert resumed.steps == reference.steps == 15
    np.testing.assert_allclose(resumed.dynamics.loss, reference.dynamics.loss, atol=1e-6)


def test_truncated_checkpoint_in_the_store_does_not_fail_the_rerun(tmp_path, start):
    """(That training then starts over and computes the same numbers is shown above.)"""
    short = [*DEBUG, "trainer.proxy_epochs=8", "trainer.checkpoint_every_steps=1"]
    proc, _ = start(*short)
    _wait_for(proc, lambda: _scratch_checkpoints(tmp_path / "store"))
    proc.kill()  # as a node crash would
    proc.wait()
    (checkpoint,) = _scratch_checkpoints(tmp_path / "store")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    rerun, err = start(*short, name="rerun")
    assert rerun.wait(timeout=300) == 0, err.read_text()[-3000:]
    log = next((tmp_path / "rerun").glob("*.log")).read_text()
    assert f"{checkpoint.name} cannot be read" in log and "training from the start" in log
    assert json.loads((tmp_path / "rerun" / "results.json").read_text())["status"] == "ok"


# --- a bad job in a sweep ---------------------------------------------------------------------


def test_a_bad_job_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(
        "-m",
        *DEBUG,
        "selector.prune_rate=0.5,1.0,0.7",
        f"paths.store_dir={tmp_path / 'store'}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert r.returncode == 2, r.stderr[-3000:]
    results = [json.loads((sweep / str(job) / "results.json").read_text()) for job in range(3)]
    assert [x["status"] for x in results] == ["ok", "failed", "ok"]
    assert [x["prune_rate"] for x in results] == [0.5, 1.0, 0.7]
    assert "prune_rate" in results[1]["error"]
    assert results[1]["method"] == results[0]["method"]  # the same label as its healthy siblings
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("coreset-lab: error:")]
    assert len(errors) == 1 and "prune_rate" in errors[0], r.stderr
    assert "1 job(s) of the sweep failed" in r.stderr


# --- SIGTERM and Ctrl-C -------------------------------------------------------------------------


# The fast engine: it checkpoints at epoch ends, so the signal can come mid-training. (Lightning
# hands Ctrl-C back instead of exiting: test_interrupted_lightning_training_reruns_...)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_an_interrupted_run_says_so_in_one_line_and_keeps_its_checkpoint(tmp_path, start, sig):
    store = tmp_path / "store"
    proc, err = start(*LONG, "trainer.engine=fast")
    _wait_for(proc, lambda: _scratch_checkpoints(store))
    os.kill(proc.pid, sig)
    assert proc.wait(timeout=60) == 128 + sig
    stderr = err.read_text()
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if "interrupted" in line]
    assert len(lines) == 1, stderr
    assert sig.name in lines[0] and str(tmp_path / "run") in lines[0]
    assert "scoring_model" in lines[0] and "resumes" in lines[0]
    log = next((tmp_path / "run").glob("*.log")).read_text()
    assert lines[0].split("coreset-lab: ", 1)[1] in log
    assert _scratch_checkpoints(store), "the interrupted training's checkpoint is gone"


# --- UNSEEN's worker processes ------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, ...); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _tree(root: int) -> dict[int, str]:
    """Every live descendant of `root`: pid -> its start time (tells a reused pid apart)."""
    found: dict[int, str] = {}
    parents = {root}
    while parents:
        children = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            fields = _stat(int(stat.parent.name))
            if fields and int(fields[1]) in parents and fields[0] != "Z":
                children[int(stat.parent.name)] = fields[19]
        found.update(children)
        parents = set(children)
    return found


def _alive(processes: dict[int, str]) -> list[int]:
    return [
        pid
        for pid, started in processes.items()
        if (f := _stat(pid)) is not None and f[19] == started and f[0] != "Z"
    ]


# SIGKILL is the hard case (the parent can do nothing); SIGTERM adds the parent's own clean-up.
@pytest.mark.parametrize(
    "sig",
    [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
    ids=["kill", "term"],
)
def test_workers_do_not_outlive_their_parent(tmp_path, start, sig):
    """SIGKILL (the OOM killer): the workers see they were orphaned; SIGTERM: the parent ends
    them."""
    store = tmp_path / "store"
    proc, err = start("protocol=unseen", "scorer=margin", "protocol.workers=2", *LONG)
    # both workers are training (each builds its fold model in a .partial directory)
    _wait_for(proc, lambda: len(list(store.glob("scoring_model/.*.partial"))) >= 2)
    tree = _tree(proc.pid)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in tree]
    assert sum(b"spawn_main" in c for c in commands) == 2, commands
    assert any(b"resource_tracker" in c for c in commands), commands
    os.kill(proc.pid, sig)
    status = proc.wait(timeout=30)
    deadline = time.time() + 10
    while _alive(tree) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(tree), "processes of the run outlived it"
    if sig == signal.SIGTERM:
        assert status == 128 + sig
        stderr = err.read_text()
        assert "Traceback" not in stderr and "leaked" not in stderr, stderr
        assert sum("interrupted by SIGTERM" in line for line in stderr.splitlines()) == 1
