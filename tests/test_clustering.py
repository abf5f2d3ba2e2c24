"""Clustering: faiss k-means, cosine k-NN, metrics and TEMI on small synthetic blobs."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from coreset_lab.clustering import Clustering, cluster, cluster_metrics, knn
from coreset_lab.clustering.temi import MultiHead, predict_head, temi_head_losses
from coreset_lab.errors import UserError
from coreset_lab.run.config import CONF_DIR


def blobs(k=4, d=16, per=100, scale=3.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * scale
    true = np.repeat(np.arange(k), per)
    x = centers[true] + rng.normal(size=(k * per, d))
    order = rng.permutation(k * per)  # interleave the blobs
    return x[order].astype(np.float32), true[order].astype(np.int64)


# --- k-means ---------------------------------------------------------------------------------


def test_kmeans_recovers_blobs_and_is_deterministic():
    x, true = blobs()
    cfg = {"method": "kmeans", "num_clusters": None, "n_init": 3, "niter": 30}
    a = cluster(x, 4, cfg, seed=3)
    b = cluster(x, 4, cfg, seed=3)
    assert isinstance(a, Clustering)
    assert a.labels.dtype == np.int64 and a.labels.shape == (400,)
    assert a.centroids.dtype == np.float32 and a.centroids.shape == (4, 16)
    assert cluster_metrics(a.labels, true)["accuracy"] == 1.0
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.info["method"] == "kmeans" and a.info["k"] == 4
    # spherical + normalize: unit-norm centroids
    np.testing.assert_allclose(np.linalg.norm(a.centroids, axis=1), 1.0, atol=1e-5)


def test_kmeans_uses_every_point():
    """N = 3000 >> 256 * k: faiss would subsample to 512 points by default. With all points
    used, every centroid is exactly the mean of the points assigned to it."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(1500, 8)) + 5, rng.normal(size=(1500, 8)) - 5])
    cfg = {"method": "kmeans", "spherical": False, "normalize": False, "n_init": 1}
    c = cluster(x.astype(np.float32), 2, cfg, seed=0)
    means = np.stack([x[c.labels == j].mean(axis=0) for j in range(2)])
    np.testing.assert_allclose(c.centroids, means, atol=1e-4)
    assert np.bincount(c.labels).tolist() == [1500, 1500]


def test_cluster_config_num_clusters_overrides_and_errors():
    x, _ = blobs(k=3, per=30)
    c = cluster(x, 10, {"method": "kmeans", "num_clusters": 3}, seed=0)
    assert c.info["k"] == 3 and set(np.unique(c.labels)) <= {0, 1, 2}
    with pytest.raises(UserError, match="method"):
        cluster(x, 3, {"method": "dbscan"})
    with pytest.raises(UserError, match="unknown option"):
        cluster(x, 3, {"method": "kmeans", "n_inits": 2})
    with pytest.raises(UserError, match="n_init"):
        cluster(x, 3, {"method": "kmeans", "n_init": 0})
    with pytest.raises(UserError, match="num_clusters"):
        cluster(x, len(x) + 1, {"method": "kmeans"})


def test_cluster_never_takes_labels():
    assert "labels" not in inspect.signature(cluster).parameters


# --- k-NN ------------------------------------------------------------------------------------


def brute_knn(x, k):
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(sim, idx, axis=1)


def test_knn_matches_brute_force_and_excludes_self():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 12)).astype(np.float32)
    idx, sim = knn(x, 7)
    assert idx.dtype == np.int64 and sim.dtype == np.float32 and idx.shape == (150, 7)
    assert not (idx == np.arange(150)[:, None]).any()
    ref_idx, ref_sim = brute_knn(x.astype(np.float64), 7)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sim, ref_sim, atol=1e-5)


def test_knn_chunking_is_identical():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(101, 5)).astype(np.float32)
    full = knn(x, 4)
    for chunk in (1, 7, 100, 101, 1000):
        chunked = knn(x, 4, chunk_size=chunk)
        np.testing.assert_array_equal(chunked[0], full[0])
        np.testing.assert_array_equal(chunked[1], full[1])


def test_knn_duplicates_and_bad_k():
    x = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0.1, 1]], dtype=np.float32)
    idx, sim = knn(x, 2)
    assert not (idx == np.arange(5)[:, None]).any()
    assert set(idx[0]) == {1, 2} and np.allclose(sim[0], 1.0)
    with pytest.raises(ValueError, match="k must be"):
        knn(x, 5)
    with pytest.raises(ValueError, match="NaN"):
        knn(np.full((3, 2), np.nan), 1)


# --- metrics ---------------------------------------------------------------------------------


def test_cluster_metrics_permuted_and_hand_made():
    true = np.array([0, 0, 1, 1, 2, 2, 2])
    perm = np.array([2, 0, 1])[true] + 5  # renamed clusters
    m = cluster_metrics(perm, true)
    assert m == pytest.approx({"accuracy": 1.0, "nmi": 1.0, "ari": 1.0})
    m = cluster_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert m == pytest.approx({"accuracy": 0.5, "nmi": 0.0, "ari": -0.5})
    # more clusters than classes: only one cluster per class can be matched
    assert cluster_metrics(np.array([0, 1, 2, 3]), np.array([0, 0, 1, 1]))[
        "accuracy"
    ] == pytest.approx(0.5)
    # 5 of 6 right after the best matching
    m = cluster_metrics(np.array([1, 1, 1, 0, 0, 1]), np.array([0, 0, 0, 1, 1, 1]))
    assert m["accuracy"] == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="length"):
        cluster_metrics(np.array([0, 1]), np.array([0, 1, 1]))


# --- TEMI ------------------------------------------------------------------------------------


def naive_temi_losses(s, t, pk, beta, ts, tt, mom):
    """The loss written as in the reference (powers of probabilities), for comparison."""
    b = s.shape[1] // 2
    ps, pt = torch.softmax(s / ts, -1), torch.softmax(t / tt, -1)
    pk = pk * mom + pt.mean(1) * (1 - mom)
    w = (pt[:, :b] * pt[:, b:]).sum(-1).mean(0)

    def one(p1, p2):
        return -(((p1 * p2) ** beta) / pk[:, None]).sum(-1).log()

    return 0.5 * ((w * one(ps[:, :b], pt[:, b:])).mean(1) + (w * one(ps[:, b:], pt[:, :b])).mean(1))


def test_temi_loss_matches_reference_formula():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 10, 4, generator=g), torch.randn(3, 10, 4, generator=g)
    pk = torch.softmax(torch.randn(3, 4, generator=g), -1)
    ours, new_pk = temi_head_losses(s, t, pk, 0.6, 0.1, 0.1, 0.9)
    ref = naive_temi_losses(s.double(), t.double(), pk.double(), 0.6, 0.1, 0.1, 0.9)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(new_pk, pk * 0.9 + torch.softmax(t / 0.1, -1).mean(1) * 0.1)


def test_multihead_single_head_matches_all_heads():
    torch.manual_seed(0)
    heads = MultiHead(3, 6, 16, 8, 5)
    x = torch.randn(20, 6)
    full = heads(x)
    assert full.shape == (3, 20, 5)
    torch.testing.assert_close(heads(x, head=2)[0], full[2])
    labels = predict_head(heads, x, 1, chunk=7)
    np.testing.assert_array_equal(labels, full[1].argmax(-1).numpy())


TEMI_TINY = {
    "method": "temi",
    "num_heads": 4,
    "hidden_dim": 64,
    "bottleneck_dim": 32,
    "knn": 10,
    "batch_size": 64,
    "lr": 1e-3,
    "epochs": 8,
    "warmup_epochs": 1,
    "teacher_momentum": 0.9,  # few steps: a slow teacher would stay at its initialisation
    "accelerator": "cpu",
}


def test_temi_clusters_blobs_label_free():
    x, true = blobs()
    a = cluster(x, 4, TEMI_TINY, seed=0)
    assert a.centroids is None and a.labels.dtype == np.int64 and a.labels.shape == (400,)
    assert a.labels.min() >= 0 and a.labels.max() < 4
    info = a.info
    assert info["method"] == "temi" and info["k"] == 4 and info["batch_size"] == 64
    assert info["steps"] == 8 * (400 // 64)
    # the chosen head is the argmin of its own mean loss over the last epoch
    assert len(info["head_losses"]) == 4
    assert info["head"] == int(np.argmin(info["head_losses"]))
    assert cluster_metrics(a.labels, true)["accuracy"] >= 0.95
    # deterministic for a seed; the true labels are never an input, so shuffling them
    # can only change the (report-only) metrics, never the clustering
    b = cluster(x, 4, TEMI_TINY, seed=0)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.info["head_losses"] == b.info["head_losses"]


def test_temi_config_errors():
    x, _ = blobs(k=2, per=10)
    with pytest.raises(UserError, match="unknown option"):
        cluster(x, 2, {**TEMI_TINY, "heads": 3})
    with pytest.raises(UserError, match="beta"):
        cluster(x, 2, {**TEMI_TINY, "beta": 0})


def test_config_files_match_code_defaults():
    from pathlib import Path

    from omegaconf import OmegaConf

    from coreset_lab.clustering.kmeans import KMeansConfig
    from coreset_lab.clustering.temi import TEMIConfig

    conf = Path(CONF_DIR) / "clustering"
    km = OmegaConf.to_container(OmegaConf.load(conf / "kmeans.yaml"))
    temi = OmegaConf.to_container(OmegaConf.load(conf / "temi.yaml"))
    assert km["method"] == "kmeans" and temi["method"] == "temi"
    assert KMeansConfig.from_dict(km) == KMeansConfig()
    assert TEMIConfig.from_dict(temi) == TEMIConfig()
    t = TEMIConfig()
    elfs = (50, 50, 0.6, 0.996, 1024)  # heads, neighbours, beta, teacher EMA, batch
    assert (t.num_heads, t.knn, t.beta, t.teacher_momentum, t.batch_size) == elfs
    x, true = blobs(k=3, per=30)
    assert cluster_metrics(cluster(x, 3, km).labels, true)["accuracy"] == 1.0
