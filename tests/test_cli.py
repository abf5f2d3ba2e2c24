"""The command line as a user meets it: help, config printing, runs, sweeps, bad input."""

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.conftest import run_cli

DEBUG = ["trainer=debug", "logger=none"]


def test_help_lists_groups_and_examples(tmp_path):
    r = run_cli("--help", cwd=tmp_path)
    assert r.returncode == 0
    for word in ("scorer:", "selector:", "protocol:", "dataset:", "Examples", "prune_rate"):
        assert word in r.stdout


def test_cfg_job_prints_the_composed_config_with_overrides(tmp_path):
    r = run_cli("--cfg", "job", "selector.prune_rate=0.7", "seed=3", "scorer=aum", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = OmegaConf.create(r.stdout)
    assert cfg.selector.prune_rate == 0.7 and cfg.seed == 3
    assert cfg.scorer._target_.endswith("AUM")


def test_run_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    r = run_cli(*DEBUG, "selector.prune_rate=0.7", "seed=1", f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads((out / "results.json").read_text())
    coreset = np.load(out / "coreset.npy")
    scores = np.load(out / "scores.npy")
    assert coreset.dtype == np.int64 and np.all(np.diff(coreset) > 0)
    assert result["coreset_size"] == len(coreset) == 1347 - int(0.7 * 1347)
    assert scores.shape == (1347,)
    assert result["method"] == "el2n" and result["seed"] == 1 and result["prune_rate"] == 0.7
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert {"train_scoring_model", "score", "select", "evaluate"} <= set(result["stage_seconds"])
    resolved = OmegaConf.load(out / "config.yaml")
    assert resolved.selector.prune_rate == 0.7 and "${" not in (out / "config.yaml").read_text()
    assert list(out.glob("*.log")), "the run log is missing"


def test_multirun_sweeps_and_trains_one_proxy_per_seed(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(
        "-m",
        *DEBUG,
        "selector.prune_rate=0.5,0.9",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    results = [json.loads(p.read_text()) for p in sorted(sweep.rglob("results.json"))]
    assert sorted((x["prune_rate"], x["seed"]) for x in results) == [
        (0.5, 0),
        (0.5, 1),
        (0.9, 0),
        (0.9, 1),
    ]

    def proxies(kind):
        return sum(a.startswith("scoring_model/") for x in results for a in x["artifacts"][kind])

    assert (proxies("built"), proxies("reused")) == (2, 2)  # prune rate is not in the proxy key


@pytest.mark.parametrize(
    "override, needle",
    [
        ("selector.prune_rate=1.0", "selector.prune_rate"),
        ("selector.prune_rate=-0.1", "selector.prune_rate"),
        ("selector.prune_rate=abc", "selector.prune_rate"),
        ("dataset=cifar10", "dataset.root"),
    ],
)
def test_bad_values_give_one_clear_line_and_exit_2(tmp_path, override, needle):
    r = run_cli(*DEBUG, override, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.parametrize("override", ["scorer=nope", "selector.prun_rate=0.5"])
def test_unknown_options_and_keys_are_rejected_without_traceback(tmp_path, override):
    r = run_cli(*DEBUG, override, cwd=tmp_path)
    assert r.returncode != 0
    assert override.split("=")[0].split(".")[-1] in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
