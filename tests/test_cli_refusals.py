"""Refusals the command line gets before anything is composed: one line, exit status 2."""

import shutil

import pytest

from coreset_lab.errors import UserError
from coreset_lab.run.config import compose_config
from tests.conftest import run_cli


@pytest.mark.parametrize(
    "override, new",
    [("unseen.folds=3", "protocol.folds=3"), ("++elfs.beta_grid=[0.0,0.2]", "protocol.beta_grid")],
)
def test_an_old_spelling_is_refused_with_the_new_one(tmp_path, override, new):
    r = run_cli(override, "logger=none", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and new in lines[0] and "Traceback" not in r.stderr
    with pytest.raises(UserError, match=new.split("=")[0].replace(".", r"\.")):
        compose_config([override])  # the API and scripts compose through here


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="this machine has SLURM")
def test_a_slurm_sweep_without_slurm_is_one_line(tmp_path):
    r = run_cli("-m", "hydra/launcher=slurm", "seed=0,1", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "sbatch" in r.stderr
    assert not (tmp_path / "outputs").exists()  # nothing was started


def test_a_sweep_over_protocols_takes_each_protocols_own_options(caplog):
    """`++protocol.folds=2` on a sweep that also runs fitting jobs: UNSEEN reads it, fitting leaves
    it out and says so; an option no protocol has is refused by name."""
    import logging

    from coreset_lab.run.checks import check_config

    both = ["++protocol.folds=2", "++protocol.search_iterations=5"]
    with caplog.at_level(logging.INFO, logger="coreset_lab"):
        fitting = check_config(compose_config(both)[0]).protocol
    assert type(fitting).__name__ == "Fitting" and "left out" in caplog.text
    unseen = check_config(compose_config(["protocol=unseen", *both])[0]).protocol
    assert unseen.folds == 2
    elfs = check_config(compose_config(["protocol=elfs", *both])[0]).protocol
    assert elfs.search_iterations == 5
    with pytest.raises(UserError, match=r"protocol=unseen has no option protocol\.fols"):
        check_config(compose_config(["protocol=unseen", "++protocol.fols=2"])[0])


def test_a_refusal_is_printed_once_and_kept_in_the_run_log(tmp_path):
    r = run_cli("selector.prune_rate=1.5", "logger=none", f"hydra.run.dir={tmp_path / 'run'}",
                cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2
    said = "selector.prune_rate must be"
    assert (r.stdout + r.stderr).count(said) == 1, r.stdout + r.stderr  # stderr, not also stdout
    assert said in next((tmp_path / "run").glob("*.log")).read_text()
