"""A stored artifact is served only when everything that determines it is the same: config,
code, data and weights contents, device and precision. Real edits, real files, a real store."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import coreset_lab
from coreset_lab.data import build_dataset
from coreset_lab.protocols.label_free import encoder_fields
from coreset_lab.run.pipeline import run
from coreset_lab.services.context import RunContext, open_store
from coreset_lab.store.artifacts import MANIFEST, ArtifactStore, problem_with
from tests.conftest import subprocess_env
from tests.datagen import make_fashion_mnist, make_image_folder

FAST = ["trainer=debug", "trainer.proxy_epochs=3", "trainer.target_iterations=10"]


def _run(make_cfg, *overrides):
    cfg, choices = make_cfg(*FAST, *overrides)
    return run(cfg, choices)


def _kinds(result, kind):
    return sorted(a.split("/")[0] for a in result["artifacts"][kind])


def _context(make_cfg, *overrides) -> RunContext:
    cfg, _ = make_cfg(*overrides)
    return RunContext.from_config(
        cfg, build_dataset(**cfg.dataset), open_store(cfg, time.time()), "."
    )


# --- code ---------------------------------------------------------------------------------------


def _project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    src = Path(coreset_lab.__file__).resolve().parent
    shutil.copytree(src, root / "coreset_lab", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _run_copy(root: Path, store: Path, out: Path) -> dict:
    env = {**subprocess_env(), "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "coreset_lab", *FAST, "logger=none"]
    cmd += [f"paths.store_dir={store}", f"hydra.run.dir={out}"]
    r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads((out / "results.json").read_text())


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_a_code_edit_rebuilds_what_it_changes_and_only_that(tmp_path):
    root, store = _project_copy(tmp_path), tmp_path / "store"
    first = _run_copy(root, store, tmp_path / "r0")
    assert _kinds(first, "built") == ["evaluation", "scoring_model"]

    # Comments, docstrings and presentation code cannot change a result: everything is reused.
    _edit(root / "coreset_lab/models/init.py", "    for m in", "    # a comment\n    for m in")
    _edit(root / "coreset_lab/run/results.py", '("seed", ', '("seed (edited)", ')
    same = _run_copy(root, store, tmp_path / "r1")
    assert _kinds(same, "built") == [] and _kinds(same, "reused") == ["evaluation", "scoring_model"]
    assert same["test_accuracy"] == first["test_accuracy"]

    # A real change of the conv initialisation: the scoring model and evaluation are rebuilt.
    _edit(root / "coreset_lab/models/init.py", 'mode="fan_out"', 'mode="fan_in"')
    edited = _run_copy(root, store, tmp_path / "r2")
    assert _kinds(edited, "built") == ["evaluation", "scoring_model"]
    assert _kinds(edited, "reused") == []
    assert not np.array_equal(
        np.load(tmp_path / "r0" / "scores.npy"), np.load(tmp_path / "r2" / "scores.npy")
    )


# --- data and weights files ---------------------------------------------------------------------


def test_replacing_image_files_under_the_same_root_rebuilds(make_cfg, tmp_path):
    root = tmp_path / "imgs"
    make_image_folder(root, classes=3, per_class=6, size=16, seed=0)
    args = ["dataset=image_folder", f"dataset.root={root}", "dataset.image_size=16", "cache=true"]
    first = _run(make_cfg, *args)
    assert _kinds(first, "built") == ["evaluation", "scoring_model"]
    assert _kinds(_run(make_cfg, *args), "reused") == ["evaluation", "scoring_model"]

    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    make_image_folder(root, classes=3, per_class=6, size=16, seed=1)  # same names, new pixels
    for p, ns in stamps.items():  # even with the old mtimes, the content is seen
        os.utime(p, ns=(ns, ns))
    again = _run(make_cfg, *args)
    assert _kinds(again, "built") == ["evaluation", "scoring_model"]


def test_replacing_in_memory_dataset_files_rebuilds(make_cfg, tmp_path):
    root = tmp_path / "fmnist"
    make_fashion_mnist(root, n_train=60, n_test=20, seed=0)
    ctx = _context(make_cfg, "dataset=fashion_mnist", f"dataset.root={root}")
    make_fashion_mnist(root, n_train=60, n_test=20, seed=1)
    replaced = _context(make_cfg, "dataset=fashion_mnist", f"dataset.root={root}")
    assert ctx.data_id != replaced.data_id
    assert ctx.models.training_spec() != replaced.models.training_spec()


def test_replacing_a_weights_file_changes_model_and_encoder_keys(make_cfg, tmp_path):
    weights = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(3)}, weights)
    args = ["model=resnet18", f"+model.kwargs.weights={weights}"]
    args += ["encoder=dino_vits16", f"encoder.weights={weights}"]
    encoder_node = OmegaConf.to_container(make_cfg(*args)[0].encoder, resolve=True)
    before = _context(make_cfg, *args)
    spec = before.models.training_spec()
    encoder = before.config_spec(encoder_fields(encoder_node))  # as the embeddings' key has it
    assert spec["model"]["kwargs"]["weights"]["file"] == str(weights)
    torch.save({"w": torch.ones(3)}, weights)  # same path, same size, new content
    after = _context(make_cfg, *args)
    assert after.models.training_spec() != spec
    assert after.config_spec(encoder_fields(encoder_node)) != encoder


# --- device and precision -----------------------------------------------------------------------


def test_device_and_precision_are_in_the_key(make_cfg, tmp_path):
    ctx = _context(make_cfg)
    spec = ctx.models.training_spec()
    assert spec["device"] == "cpu" and spec["precision"] == "32-true"  # auto, resolved
    bf16 = _context(make_cfg, "trainer.precision=bf16-mixed").models.training_spec()
    assert bf16["precision"] == "bf16-mixed" and bf16 != spec
    assert ctx.store.environment["device"].startswith("cpu:")
    gpu = ArtifactStore(tmp_path, {**ctx.store.environment, "device": "cuda:NVIDIA H200"})
    assert gpu.path("scoring_model", spec) != ctx.store.path("scoring_model", spec)


# --- manifests checked against their key --------------------------------------------------------


def _scoring_dir(store: Path, result: dict) -> Path:
    [name] = [a for a in result["artifacts"]["built"] if a.startswith("scoring_model/")]
    return store / name


def test_an_artifact_copied_under_another_key_is_quarantined_and_rebuilt(make_cfg, tmp_path):
    store = tmp_path / "store"
    args = [f"paths.store_dir={store}"]
    seed0 = _run(make_cfg, *args, "seed=0")
    seed1 = _run(make_cfg, *args, "seed=1")
    scores1 = np.load(tmp_path / "run" / "scores.npy")
    target = _scoring_dir(store, seed1)
    shutil.rmtree(target)
    shutil.copytree(_scoring_dir(store, seed0), target)  # seed 0's model under seed 1's key
    assert "does not hash to its key" in problem_with(target)

    again = _run(make_cfg, *args, "seed=1")
    assert "scoring_model" in _kinds(again, "built")
    assert again["artifacts"]["quarantined"] and problem_with(target) is None
    assert np.array_equal(np.load(tmp_path / "run" / "scores.npy"), scores1)
    assert len(list(target.parent.glob(f"{target.name}.corrupt-*"))) == 1


def _stored(tmp_path) -> Path:
    store = ArtifactStore(tmp_path, {"device": "cpu:test"})
    return store.get_or_build("stage", {"k": 1}, lambda p: np.save(p / "x.npy", np.arange(5)))


def _edit_manifest(path: Path, change) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda m: m["spec"].update(k=2), "does not hash to its key"),
        (lambda m: m["spec"].update(_version="0.0.1"), "does not hash to its key"),
        (lambda m: m.update(coreset_lab="0.0.1"), "built by coreset-lab 0.0.1"),
        (lambda m: m.update(files={}), "lists no files"),
        (lambda m: m["files"].update({"y.npy": {"bytes": 1, "sha256": "0"}}), "y.npy is missing"),
    ],
    ids=["edited-spec", "edited-version-in-spec", "edited-version", "no-files", "wrong-files"],
)
def test_a_manifest_that_does_not_match_is_quarantined(tmp_path, change, reason):
    path = _stored(tmp_path)
    _edit_manifest(path, change)
    assert reason in problem_with(path)
    assert _stored(tmp_path) == path and problem_with(path) is None  # rebuilt in place
    assert len(list(path.parent.glob(f"{path.name}.corrupt-*"))) == 1


def test_an_extra_file_beside_the_listed_ones_is_refused(tmp_path):
    path = _stored(tmp_path)
    (path / "x2.npy").write_bytes(b"altered data")
    assert "does not list: x2.npy" in problem_with(path)


# --- refresh ------------------------------------------------------------------------------------


def test_cache_refresh_rebuilds_once_per_run(make_cfg, tmp_path):
    store = tmp_path / "store"
    first = _run(make_cfg, f"paths.store_dir={store}")
    refreshed = _run(make_cfg, f"paths.store_dir={store}", "cache=refresh")
    assert _kinds(refreshed, "built") == ["evaluation", "scoring_model"]
    assert refreshed["test_accuracy"] == first["test_accuracy"]  # same computation, same number
    assert not list(store.rglob("*.replaced-*")) and not list(store.rglob("*.corrupt-*"))

    # Within one run (and its worker processes) a refreshed artifact is built once.
    s = ArtifactStore(tmp_path / "s2", refresh_since=None)
    calls = []
    s.get_or_build("stage", {"k": 1}, lambda p: calls.append(np.save(p / "x.npy", [1])))
    again = ArtifactStore(**{**s.settings(), "refresh_since": time.time()})
    for _ in range(2):
        again.get_or_build("stage", {"k": 1}, lambda p: calls.append(np.save(p / "x.npy", [2])))
    assert len(calls) == 2 and again.log.built == ["stage/" + again.path("stage", {"k": 1}).name]
