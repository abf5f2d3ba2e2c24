"""The package as a user installs it: a wheel built from this tree, installed into a fresh
target, answers --help and runs the digits default from an unrelated directory with its own
configs (no source tree, no editable install), and takes the user's configs by search path."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_wheel_runs_from_anywhere_with_user_configs(tmp_path):
    wheels, target, elsewhere = tmp_path / "whl", tmp_path / "site", tmp_path / "elsewhere"
    pip = [sys.executable, "-m", "pip", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)]
    subprocess.run(build, check=True, cwd=tmp_path)
    [wheel] = wheels.glob("coreset_lab-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}

    def cli(*args):
        cmd = [sys.executable, "-m", "coreset_lab", *args]
        return subprocess.run(cmd, cwd=elsewhere, env=env, capture_output=True, text=True)

    show = [sys.executable, "-c", "import coreset_lab; print(coreset_lab.__file__)"]
    where = subprocess.run(show, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(target)), where.stdout  # the installed copy, not the tree
    assert "experiment: " in cli("--help").stdout
    run = cli("trainer=debug", "logger=none")
    assert run.returncode == 0, run.stderr[-2000:]
    assert list((elsewhere / "outputs" / "runs").rglob("results.json"))
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\nseed: 7\ntask_name: mine\n")
    cfg = cli(
        f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", "experiment=mine", "--cfg", "job"
    )
    assert cfg.returncode == 0, cfg.stderr[-2000:]
    assert "seed: 7" in cfg.stdout and "task_name: mine" in cfg.stdout
