"""What a run tells the person watching it: progress lines in logs, the sweep summary, and
one line when W&B will not start."""

from __future__ import annotations

import logging
import subprocess
import sys

from coreset_lab.progress import Progress
from tests.conftest import run_cli, subprocess_env

DEBUG = ["trainer=debug", "trainer.proxy_epochs=1", "trainer.target_iterations=5"]


def test_progress_writes_lines_when_there_is_no_terminal(caplog):
    caplog.set_level(logging.INFO, logger="coreset_lab")
    with Progress("training fold 2: 3 epochs of 90 samples", 6, show="lines", every=0) as p:
        for _ in range(6):
            p.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "training fold 2: 3 epochs of 90 samples"
    assert any(line.endswith("left") and ": 3/6 steps (50%)" in line for line in lines)
    assert lines[-1].startswith("training fold 2: 3 epochs of 90 samples: done, 6 steps in")


def test_a_logged_run_says_what_it_trains(tmp_path):
    out = tmp_path / "run"
    r = run_cli(*DEBUG, "trainer.progress=auto", "logger=none", f"hydra.run.dir={out}",
                cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    log = "".join(p.read_text() for p in out.glob("*.log"))
    assert "training proxy: 1 epochs of 1347 samples" in log
    assert "training target: 5 steps (1 epochs of 674 samples): done, 5 steps in" in log
    assert "\r" not in r.stderr  # no bar drawn into a file


def test_a_sweep_in_worker_processes_ends_with_its_summary(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(
        "-m",
        *DEBUG,
        "logger=none",
        "hydra/launcher=local_processes",
        "hydra.launcher.n_jobs=2",
        "selector.prune_rate=0.5,1.0",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    # The bad job failed in a worker process: only its record says so, and the summary reads it.
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"sweep {sweep}: 2 job(s): 1 failed, 1 ok" in r.stdout
    table = r.stdout.splitlines()
    ok = next(line for line in table if line.startswith("0 "))
    failed = next(line for line in table if line.startswith("1 "))
    assert "ok" in ok and "%" in ok and "selector.prune_rate=0.5" in ok
    assert "failed" in failed and "selector.prune_rate=1.0" in failed
    assert "job 1: UserError: selector.prune_rate must be" in r.stdout
    assert "1 job(s) of the sweep failed or left no results" in r.stderr


def test_wandb_without_a_login_is_one_line(tmp_path):
    env = subprocess_env()
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_SILENT"):
        env.pop(key, None)
    env.update(HOME=str(tmp_path), WANDB_CONFIG_DIR=str(tmp_path / ".config"))
    args = [*DEBUG, "logger=wandb", f"hydra.run.dir={tmp_path}/r"]
    r = subprocess.run(
        [sys.executable, "-m", "coreset_lab", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("coreset-lab: error")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert len(r.stderr.splitlines()) <= 3  # the line, and the same line in the run's log
    assert "W&B refused to start a run" in errors[0] and "wandb login" in errors[0]
