"""W&B logging (offline / disabled) and the submitit launcher path, as a user would run them."""

import json
import os

from tests.conftest import run_cli

DEBUG = ["trainer=debug", "trainer.proxy_epochs=1", "trainer.target_iterations=5"]


def test_wandb_offline_writes_one_run_with_the_results(tmp_path):
    env_before = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = "offline"
    try:
        r = run_cli(*DEBUG, "logger=wandb", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    finally:
        os.environ["WANDB_MODE"] = env_before or "disabled"
    assert r.returncode == 0, r.stderr[-2000:]
    runs = list((tmp_path / "run").rglob("offline-run-*"))
    assert len(runs) == 1, runs  # proxy and target share the job's run
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test_accuracy"] >= 0
    assert list((tmp_path / "run" / "proxy").rglob("metrics.csv"))  # CSV logger stays on
    # metric keys as the README names them: one section per training (proxy/, target/)
    logged = runs[0].joinpath(f"run-{runs[0].name.split('-')[-1]}.wandb").read_bytes()
    assert b"proxy/train" in logged and b"target/train" in logged and b"proxy-train" not in logged


def test_wandb_disabled_runs_without_creating_runs(tmp_path):
    r = run_cli(*DEBUG, "logger=wandb", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list((tmp_path / "run").rglob("offline-run-*"))


def test_local_processes_launcher_caps_jobs_and_shares_the_cores(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(
        "-m",
        *DEBUG,
        "logger=none",
        "hydra/launcher=local_processes",
        "hydra.launcher.n_jobs=2",
        "seed=0,1,2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list(sweep.rglob("results.json"))) == 3
    logs = "".join(p.read_text() for p in sweep.rglob("*.log"))
    cores = len(os.sched_getaffinity(0))
    assert f"sweep job: {max(1, cores // 2)} torch thread(s), 2 job(s) at once" in logs


def test_submitit_local_launcher_runs_a_sweep(tmp_path):
    """The submitit code path the SLURM launcher uses, on this machine."""
    sweep = tmp_path / "sweep"
    r = run_cli(
        "-m",
        *DEBUG,
        "logger=none",
        "hydra/launcher=submitit_local",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list(sweep.rglob("results.json"))) == 2
    assert list((sweep / ".submitit").rglob("*_result.pkl"))
