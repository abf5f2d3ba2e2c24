"""The DIAGNOSTIC `clustering=oracle` (pseudo-labels = ground truth with noise) and the
DIAGNOSTIC `protocol.beta_truth` (test accuracy of every β of the grid): both read labels, say so,
and the second changes nothing."""

import json
import logging
import math

import numpy as np
import pytest

import coreset_lab.run.pipeline as pipeline
from coreset_lab.clustering import METHODS, cluster, cluster_metrics, parse_config, reads_labels
from coreset_lab.clustering.oracle import oracle_labels
from coreset_lab.errors import UserError
from coreset_lab.protocols.beta_search import at_grid_edge

FAST = ["trainer=debug", "trainer.proxy_epochs=3", "trainer.target_iterations=30"]


def truth(n=1347, k=10, seed=0):
    return np.random.default_rng(seed).integers(0, k, size=n)


def oracle(noise, seed=0, n=1347, k=10, **extra):
    cfg = {"method": "oracle", "noise": noise, "reads_labels": True, **extra}
    return cluster(None, k, cfg, seed=seed, truth=truth(n, k))


# --- the oracle's pseudo-labels ---------------------------------------------------------------


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.2, 0.25, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("n", [1347, 10])
def test_oracle_changes_exactly_round_noise_n_labels_never_to_their_truth(noise, n):
    t = truth(n)
    c = cluster(None, 10, {"method": "oracle", "noise": noise}, seed=1, truth=t)
    changed = c.labels != t
    assert int(changed.sum()) == round(noise * n) == c.info["flipped"]  # no flip lands on truth
    assert c.labels.dtype == np.int64 and c.labels.min() >= 0 and c.labels.max() < 10
    assert c.info["label_accuracy"] == pytest.approx(1 - round(noise * n) / n)
    assert c.info["reads_ground_truth"] is True and c.info["method"] == "oracle"
    assert c.centroids is None


def test_oracle_without_noise_is_exactly_the_truth():
    t = truth()
    c = cluster(None, 10, {"method": "oracle"}, seed=5, truth=t)  # noise defaults to 0
    np.testing.assert_array_equal(c.labels, t)
    assert c.info["noise"] == 0.0 and c.info["flipped"] == 0 and c.info["label_accuracy"] == 1.0
    assert cluster_metrics(c.labels, t)["accuracy"] == 1.0


def test_oracle_is_seeded():
    np.testing.assert_array_equal(oracle(0.3, seed=4).labels, oracle(0.3, seed=4).labels)
    assert not np.array_equal(oracle(0.3, seed=4).labels, oracle(0.3, seed=5).labels)
    # which samples change depends on the seed too, not only their new classes
    t = truth()
    a, b = (oracle(0.3, seed=s).labels != t for s in (4, 5))
    assert not np.array_equal(a, b)


def test_oracle_moves_a_label_uniformly_to_the_other_classes():
    t = np.zeros(30000, dtype=np.int64)
    labels = oracle_labels(t, 3, 0.9, seed=0)
    moved = labels[labels != 0]
    assert moved.size == 27000
    share_of_1 = np.mean(moved == 1)
    assert abs(share_of_1 - 0.5) < 0.015  # 5 sigma of a fair coin over 27000 draws


@pytest.mark.parametrize("noise", [-0.1, 1.0, 1.5, math.nan, math.inf, "0.2", "a lot", True, None])
def test_bad_noise_is_one_clear_user_error(noise):
    with pytest.raises(UserError, match=r"clustering\.noise must be a real number in \[0.0, 1.0\)"):
        parse_config({"method": "oracle", "noise": noise})
    with pytest.raises(UserError, match=r"clustering\.noise"):
        oracle(noise)


def test_oracle_options_and_the_truth_argument():
    with pytest.raises(UserError, match="reads_labels"):
        parse_config({"method": "oracle", "reads_labels": False})
    with pytest.raises(UserError, match="unknown option"):
        parse_config({"method": "oracle", "num_clusters": 10})  # k is the number of classes
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="never given labels"):
        cluster(x, 2, {"method": "kmeans"}, truth=np.zeros(40, dtype=np.int64))
    with pytest.raises(ValueError, match="pass truth="):
        cluster(x, 2, {"method": "oracle"})
    with pytest.raises(UserError, match="two classes"):
        oracle_labels(np.zeros(10, dtype=np.int64), 1, 0.5, seed=0)


def test_the_oracle_is_the_only_clustering_that_reads_labels():
    assert [m for m in METHODS if reads_labels({"method": m})] == ["oracle"]
    # decided by the method, never by the marker in the config
    assert reads_labels({"method": "oracle", "reads_labels": False})
    assert not reads_labels({"method": "kmeans", "reads_labels": True})
    with pytest.raises(UserError, match="clustering.method"):
        reads_labels({"method": "dbscan"})


def test_at_grid_edge():
    grid = [0.0, 0.1, 0.2, 0.3]
    assert at_grid_edge(grid, 0.3, prune_rate=0.5)  # larger β are allowed: widen upwards
    assert not at_grid_edge(grid, 0.3, prune_rate=0.3)  # β ≤ prune rate: nothing beyond
    assert not at_grid_edge(grid, 0.0, prune_rate=0.5)  # no β below 0
    assert at_grid_edge([0.1, 0.2], 0.1, prune_rate=0.5)
    assert not at_grid_edge(grid, 0.2, prune_rate=0.5)


# --- end to end on digits ---------------------------------------------------------------------


def test_elfs_with_the_oracle_says_it_reads_labels(make_cfg, tmp_path, caplog):
    cfg, choices = make_cfg(*FAST, "method=elfs", "clustering=oracle", "clustering.noise=0.2")
    with caplog.at_level(logging.WARNING, logger="coreset_lab"):
        result = pipeline.run(cfg, choices)
    warnings = [r for r in caplog.records if "GROUND-TRUTH" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "DIAGNOSTIC" in warnings[0].getMessage()
    assert result["method"] == "elfs-oracle0.2[pca]"
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    info = saved["clustering"]
    assert info["reads_ground_truth"] is True and info["method"] == "oracle"
    assert info["noise"] == 0.2 and info["flipped"] == round(0.2 * 1347)
    assert saved["pseudo_label_quality"]["accuracy"] == pytest.approx(1 - 269 / 1347, abs=1e-4)
    assert saved["identity"]["protocol"]["clustering"]["noise"] == 0.2
    # the artifact is keyed by the noise and the fact that it reads labels; no embeddings needed
    store = tmp_path / "outputs" / "store"
    (artifact,) = (store / "clustering").glob("*/artifact.json")
    spec = json.loads(artifact.read_text())["spec"]
    assert spec["reads_ground_truth"] is True and spec["clustering"]["noise"] == 0.2
    assert spec["clustering"]["reads_labels"] is True
    assert not (store / "embedding").exists() and "embed" not in saved["stage_seconds"]


def test_elfs_results_say_a_label_free_clustering_reads_no_label(make_cfg, tmp_path):
    cfg, choices = make_cfg(*FAST, "method=elfs", "protocol.beta_search=false")
    result = pipeline.run(cfg, choices)
    assert result["clustering"]["reads_ground_truth"] is False
    assert result["method"] == "elfs[pca]"
    # which library and device clustered is in the info and in the artifact's key (no GPU here)
    assert result["clustering"]["backend"] == "faiss-cpu"
    (artifact,) = (tmp_path / "outputs" / "store" / "clustering").glob("*/artifact.json")
    assert json.loads(artifact.read_text())["spec"]["backend"] == "faiss-cpu"


def _run_beta(make_cfg, tmp_path, name: str, *extra: str) -> tuple[dict, np.ndarray]:
    out = tmp_path / name
    cfg, choices = make_cfg(
        *FAST,
        "method=elfs",
        "selector.prune_rate=0.5",
        "protocol.beta_grid=[0.0,0.2,0.4,0.6]",  # 0.6 > prune rate: not in the search
        f"paths.output_dir={out}",
        *extra,
    )
    return pipeline.run(cfg, choices), np.load(out / "coreset.npy")


def test_beta_truth_reports_test_accuracy_per_beta_and_changes_nothing(make_cfg, tmp_path):
    plain, plain_coreset = _run_beta(make_cfg, tmp_path, "plain")
    diag, diag_coreset = _run_beta(make_cfg, tmp_path, "diag", "protocol.beta_truth=true")
    assert "beta_truth" not in plain
    truth = diag["beta_truth"]
    assert truth["beta"] == diag["beta_search"]["beta"] == [0.0, 0.2, 0.4]
    assert all(0.0 <= a <= 1.0 for a in truth["test_accuracy"])
    assert truth["best"] == truth["beta"][int(np.argmax(truth["test_accuracy"]))]
    # reported only: the same β, coreset and method identity with and without it
    assert diag["beta"] == plain["beta"] and diag["beta_search"] == plain["beta_search"]
    np.testing.assert_array_equal(diag_coreset, plain_coreset)
    assert diag["method_id"] == plain["method_id"] and diag["method"] == plain["method"]
    # at the chosen β it is the run's own evaluation: the same artifact, the same accuracy
    chosen = truth["beta"].index(diag["beta"])
    assert truth["test_accuracy"][chosen] == diag["test_accuracy"] == plain["test_accuracy"]
    assert not [a for a in diag["artifacts"]["built"] if a.startswith("beta_trial/")]
    built = [a for a in diag["artifacts"]["built"] if a.startswith("evaluation/")]
    assert len(built) == 2  # the two β the plain run did not choose; the third was reused
    edge = at_grid_edge(truth["beta"], diag["beta"], 0.5)
    assert diag["beta_at_grid_edge"] is edge and plain["beta_at_grid_edge"] is edge
    curve = json.loads((tmp_path / "diag" / "beta_search.json").read_text())
    assert curve["beta_truth"] == truth and (tmp_path / "diag" / "beta_search.png").exists()
    # not the method's cost: the same models needed, none trained for the method here
    assert diag["cost"]["models_trained"] == plain["cost"]["models_trained"] == 1 + 3
    assert diag["cost"]["models_built_this_run"] == 0


def test_beta_truth_needs_the_beta_search(make_cfg):
    cfg, choices = make_cfg(
        *FAST, "method=elfs", "protocol.beta_search=false", "protocol.beta_truth=true"
    )
    with pytest.raises(UserError, match="protocol.beta_truth"):
        pipeline.run(cfg, choices)


@pytest.mark.parametrize("noise", ["1.0", "-0.1", "nan", "lots"])
def test_bad_noise_is_refused_before_any_work(make_cfg, tmp_path, noise):
    cfg, choices = make_cfg(*FAST, "method=elfs", "clustering=oracle", f"clustering.noise={noise}")
    with pytest.raises(UserError, match=r"clustering\.noise must be a real number in \[0.0, 1.0\)"):
        pipeline.run(cfg, choices)
    assert not (tmp_path / "outputs" / "store").exists()
