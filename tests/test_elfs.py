"""ELFS end to end on digits, and the proof that it never reads a ground-truth label."""

import dataclasses
import json

import numpy as np
import pytest

import coreset_lab.run.pipeline as pipeline
from coreset_lab.clustering import METHODS, reads_labels
from coreset_lab.data import TensorImageSet, build_dataset
from coreset_lab.protocols.beta_search import BetaCurve, holdout_split
from tests.conftest import run_cli

FAST = ["trainer=debug", "trainer.proxy_epochs=3", "trainer.target_iterations=30"]


def _shuffled_labels(**kwargs):
    data = build_dataset(**kwargs)
    rng = np.random.default_rng(123)
    train = TensorImageSet(data.train.images, rng.permutation(data.train_targets))
    return dataclasses.replace(data, train=train, train_eval=train)


# Small enough for a test; every clustering method is in the proof below.
CLUSTERING_FAST = {
    "kmeans": [],
    "temi": [
        "clustering.num_heads=2",
        "clustering.hidden_dim=32",
        "clustering.bottleneck_dim=16",
        "clustering.knn=5",
        "clustering.batch_size=256",
        "clustering.epochs=2",
        "clustering.warmup_epochs=0",
    ],
    "oracle": [],
}


def test_every_clustering_method_is_in_the_label_freeness_proof():
    assert set(CLUSTERING_FAST) == set(METHODS)


@pytest.mark.parametrize("clustering", METHODS)
def test_elfs_is_label_free_shuffled_ground_truth_changes_nothing(
    make_cfg, tmp_path, monkeypatch, clustering
):
    """Every label-free path computes the same pseudo-labels, scores, β and coreset when the
    ground truth is shuffled. The DIAGNOSTIC oracle (the one clustering `reads_labels`) is
    excluded from the proof and shown to fail it: its pseudo-labels follow the labels."""

    def run(store: str):
        cfg, choices = make_cfg(
            *FAST,
            "method=elfs",
            f"clustering={clustering}",
            *CLUSTERING_FAST[clustering],
            f"paths.store_dir={tmp_path}/{store}",
            f"paths.output_dir={tmp_path}/{store}-run",
        )
        result = pipeline.run(cfg, choices)
        out = tmp_path / f"{store}-run"
        pseudo = next((tmp_path / store / "clustering").glob("*/pseudo_labels.npy"))
        return result, np.load(out / "coreset.npy"), np.load(out / "scores.npy"), np.load(pseudo)

    honest = run("honest")
    monkeypatch.setattr(pipeline, "build_dataset", _shuffled_labels)
    shuffled = run("shuffled")
    assert honest[0]["clustering"]["reads_ground_truth"] is reads_labels({"method": clustering})
    if reads_labels({"method": clustering}):  # the oracle: not label-free, and it shows
        assert clustering == "oracle"
        # noise 0: the pseudo-labels are whichever labels the data carries, shuffled or not
        assert shuffled[0]["pseudo_label_quality"]["accuracy"] == 1.0
        assert honest[0]["pseudo_label_quality"]["accuracy"] == 1.0
        assert not np.array_equal(honest[3], shuffled[3])
        assert not np.array_equal(honest[1], shuffled[1])
        return
    np.testing.assert_array_equal(honest[1], shuffled[1])  # coreset
    np.testing.assert_array_equal(honest[2], shuffled[2])  # scores
    np.testing.assert_array_equal(honest[3], shuffled[3])  # pseudo-labels
    assert honest[0]["beta"] == shuffled[0]["beta"]
    assert honest[0]["beta_search"] == shuffled[0]["beta_search"]
    # the shuffle was real: the (report-only) cluster quality against "true" labels collapses
    # (tiny TEMI reaches an NMI of only about 0.24, k-means about 0.7)
    nmi = [r[0]["pseudo_label_quality"]["nmi"] for r in (honest, shuffled)]
    assert nmi[1] < 0.05 < 0.2 < nmi[0]


def test_elfs_command_writes_beta_curve_and_cluster_quality(tmp_path):
    out = tmp_path / "run"
    r = run_cli(
        *FAST,
        "method=elfs",
        "selector.prune_rate=0.7",
        "protocol.beta_grid=[0.0,0.2,0.4]",
        "logger=none",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    curve = json.loads((out / "beta_search.json").read_text())
    assert curve["beta"] == [0.0, 0.2, 0.4] and result["beta"] == curve["best"]
    assert curve["best"] == curve["beta"][int(np.argmax(curve["pseudo_label_accuracy"]))]
    assert (out / "beta_search.png").exists()
    assert result["coreset_size"] == 1347 - int(0.7 * 1347)
    assert set(result["pseudo_label_quality"]) >= {"accuracy", "nmi", "ari"}
    assert result["cost"]["models_trained"] == 1 + 3  # proxy + one trial per β


def test_double_end_without_search_keeps_the_band_after_the_hardest(make_cfg, tmp_path):
    cfg, choices = make_cfg(
        *FAST,
        "method=elfs",
        "protocol.beta_search=false",
        "selector.beta=0.2",
        "selector.prune_rate=0.6",
    )
    result = pipeline.run(cfg, choices)
    scores = np.load(tmp_path / "run" / "scores.npy")
    coreset = np.load(tmp_path / "run" / "coreset.npy")
    order = np.argsort(-scores, kind="stable")
    start = int(0.2 * len(scores))
    assert set(coreset) == set(order[start : start + len(coreset)])
    assert result["beta"] == 0.2


@pytest.mark.parametrize("method", ["prototypicality", "d2"])
def test_label_free_baselines_run_on_the_same_embeddings(make_cfg, tmp_path, method):
    cfg, choices = make_cfg(*FAST, f"method={method}", "selector.prune_rate=0.8")
    result = pipeline.run(cfg, choices)
    assert result["method"] == f"{method}[pca]"
    assert result["coreset_size"] == 1347 - int(0.8 * 1347)
    assert result["cost"]["models_trained"] == 0  # no proxy model: embeddings only


def test_beta_curve_and_holdout_split():
    assert BetaCurve([0.0, 0.1, 0.2], [0.5, 0.7, 0.7]).best == 0.1  # smallest on ties
    pseudo = np.repeat(np.arange(4), 50)
    pool, held = holdout_split(pseudo, 0.1, seed=0)
    assert len(held) == 20 and np.all(np.bincount(pseudo[held]) == 5)
    assert not set(pool) & set(held) and len(pool) + len(held) == 200
