"""coreset_lab.select: the CLI's run from Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import coreset_lab
from coreset_lab.data import build_dataset
from coreset_lab.errors import UserError
from tests.conftest import run_cli, subprocess_env

SETTINGS = [
    "trainer=debug",
    "trainer.proxy_epochs=2",
    "selector.prune_rate=0.7",
    "protocol.beta_grid=[0.0,0.2]",
    "evaluate=false",
    "logger=none",
]


def test_the_api_returns_the_clis_coreset(tmp_path):
    cli = tmp_path / "cli"
    r = run_cli("method=elfs", *SETTINGS, f"paths.store_dir={tmp_path}/cli-store",
                f"hydra.run.dir={cli}", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    core = coreset_lab.select(
        "digits",
        method="elfs",
        prune_rate=0.7,
        trainer="debug",
        evaluate=False,
        logger="none",
        overrides=["trainer.proxy_epochs=2", "protocol.beta_grid=[0.0,0.2]"],
        **{"paths.store_dir": tmp_path / "api-store", "hydra.run.dir": tmp_path / "api"},
    )
    assert core.run_dir == tmp_path / "api"
    np.testing.assert_array_equal(core.indices, np.load(cli / "coreset.npy"))
    np.testing.assert_array_equal(core.scores, np.load(cli / "scores.npy"))
    result = json.loads((cli / "results.json").read_text())
    assert core.info["method_id"] == result["method_id"] and core.info["method"] == "elfs[pca]"
    assert core.info["artifacts"]["reused"] == []  # its own store: computed again, the same
    assert (core.run_dir / "select.log").read_text().count("training proxy") == 2  # start, end
    assert (core.run_dir / "config.yaml").exists() and (core.run_dir / "coreset.csv").exists()


def test_arrays_go_in_and_come_back_by_content(tmp_path):
    images = build_dataset("digits").train.images.numpy()[:, 0]
    options = {"clustering.num_clusters": 10, "paths.store_dir": tmp_path / "store"}
    first = coreset_lab.select(images, method="d2", prune_rate=0.8,
                               **options, **{"hydra.run.dir": tmp_path / "a"})  # fmt: skip
    again = coreset_lab.select(images.copy(), method="d2", prune_rate=0.8,
                               **options, **{"hydra.run.dir": tmp_path / "b"})  # fmt: skip
    assert len(first) == 1347 - int(0.8 * 1347) and first.files is None
    assert first.info["selection_only"] == "dataset arrays has no labels"
    np.testing.assert_array_equal(first.indices, again.indices)
    assert again.info["artifacts"]["built"] == []  # the same file, the same keys
    assert len(list((tmp_path / "store" / "inputs").iterdir())) == 1
    emb = np.load(next((tmp_path / "store" / "embedding").glob("*/embeddings.npy")))
    own = coreset_lab.select(images, method="d2", prune_rate=0.8, embeddings=emb.astype(float),
                             **options, **{"hydra.run.dir": tmp_path / "e"})  # fmt: skip
    assert own.info["method"] == "d2[precomputed]"
    np.testing.assert_array_equal(own.indices, first.indices)
    with pytest.raises(UserError, match="has no labels, and protocol=fitting"):
        coreset_lab.select(images, method="el2n", **options, **{"hydra.run.dir": tmp_path / "c"})
    with pytest.raises(UserError, match="no such file or folder"):
        coreset_lab.select(tmp_path / "nowhere.png")


def test_a_script_sees_where_the_run_goes_and_its_progress(tmp_path):
    """No logging set up (a notebook, a plain script): the call prints its run directory, named
    for the call, and its progress lines; an unknown key is one UserError line, no traceback."""
    code = (
        "import coreset_lab\nimport coreset_lab.errors\n"
        "core = coreset_lab.select('digits', method='random', prune_rate=0.5, evaluate=False)\n"
        "print(core.run_dir)\n"
        "try:\n"
        "    coreset_lab.select('digits', method='random', **{'no_such.key': 1})\n"
        "except coreset_lab.errors.UserError as err:\n"
        "    print('refused:', err)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=subprocess_env(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(r.stdout.splitlines()[0])
    assert run_dir.name.endswith("_select") and (run_dir / "select.log").exists()
    assert f"[coreset_lab] coreset_lab.select: run directory {run_dir}" in r.stderr
    assert "refused: " in r.stdout and "no_such" in r.stdout and "Traceback" not in r.stderr
