"""The torch k-means and k-NN (what a GPU without faiss-gpu runs) agree with faiss, here on the
CPU on real data (scikit-learn's digits, PCA to 32 dimensions); and `auto` picks the GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coreset_lab.clustering import backend as backends
from coreset_lab.clustering import knn
from coreset_lab.clustering.backend import Backend, resolve_backend
from coreset_lab.clustering.kmeans import run_kmeans
from coreset_lab.clustering.knn import l2_normalize
from coreset_lab.clustering.torch_kmeans import lloyd
from tests.test_clustering import blobs, brute_knn


@pytest.fixture(scope="module")
def digits_pca():
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    x, y = load_digits(return_X_y=True)
    return PCA(32, random_state=0).fit_transform(x).astype(np.float32), y


# --- k-NN ------------------------------------------------------------------------------------


def test_torch_knn_equals_faiss_on_digits(digits_pca):
    x, _ = digits_pca
    ref_idx, ref_sim = knn(x, 10, backend="faiss")
    idx, sim = knn(x, 10, backend="torch")
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sim, ref_sim, atol=1e-5)


def test_torch_knn_matches_brute_force_in_small_blocks(monkeypatch):
    """Blocks of 3 query rows (as for N = 1.28 M in 512 MiB): the same neighbours."""
    from coreset_lab.clustering import torch_ops

    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 12)).astype(np.float32)
    monkeypatch.setattr(torch_ops, "BLOCK_ELEMENTS", 3 * 150)
    idx, sim = knn(x, 7, chunk_size=40, backend="torch")
    ref_idx, ref_sim = brute_knn(x.astype(np.float64), 7)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sim, ref_sim, atol=1e-5)


def test_torch_knn_duplicates_tie_by_index():
    x = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0.1, 1]], dtype=np.float32)
    idx, sim = knn(x, 2, backend="torch")
    assert not (idx == np.arange(5)[:, None]).any()
    assert idx[0].tolist() == [1, 2] and idx[1].tolist() == [0, 2] and np.allclose(sim[0], 1.0)


# --- k-means ---------------------------------------------------------------------------------


def test_lloyd_equals_faiss_from_the_same_initial_centroids(digits_pca):
    """The iterations themselves: same start, same 20 iterations -> same clustering."""
    import faiss

    x = l2_normalize(digits_pca[0])
    init = x[np.random.default_rng(0).choice(len(x), 10, replace=False)]
    for spherical in (True, False):
        km = faiss.Kmeans(
            x.shape[1], 10, niter=20, spherical=spherical, max_points_per_centroid=10**6
        )
        km.train(x, init_centroids=init.copy())
        _, ref = km.index.search(x, 1)
        labels, _, c = lloyd(torch.from_numpy(x), torch.from_numpy(init), 20, spherical)
        np.testing.assert_array_equal(labels.numpy(), ref[:, 0])
        np.testing.assert_allclose(c.numpy(), km.centroids, atol=1e-5)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_torch_kmeans_is_as_good_as_faiss(digits_pca, init):
    """Different random draws find different local optima; over 5 seeds of 5 restarts the
    objectives are as good (mean within 1%), and the clusterings fit the digits alike."""
    from coreset_lab.clustering import cluster_metrics

    x, y = digits_pca
    runs = {
        b: [run_kmeans(x, 10, init=init, seed=s, backend=b) for s in range(5)]
        for b in ("faiss", "torch")
    }
    mean = {b: np.mean([r[2]["objective"] for r in rs]) for b, rs in runs.items()}
    assert abs(mean["torch"] / mean["faiss"] - 1) < 0.01
    acc = {b: np.mean([cluster_metrics(r[0], y)["accuracy"] for r in rs]) for b, rs in runs.items()}
    assert acc["torch"] > acc["faiss"] - 0.05
    info = runs["torch"][0][2]
    assert info["backend"] == "torch-cpu" and info["gpu"] is False and info["init"] == init


def test_torch_kmeans_recovers_blobs_uses_every_point_and_is_deterministic():
    x, true = blobs()
    a = run_kmeans(x, 4, n_init=3, niter=30, seed=3, backend="torch")
    b = run_kmeans(x, 4, n_init=3, niter=30, seed=3, backend="torch")
    from coreset_lab.clustering import cluster_metrics

    assert cluster_metrics(a[0], true)["accuracy"] == 1.0
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(np.linalg.norm(a[1], axis=1), 1.0, atol=1e-5)
    assert a[2]["init"] == "kmeans++"  # afk-mc2 (the default) runs as exact k-means++ here
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(size=(1500, 8)) + 5, rng.normal(size=(1500, 8)) - 5])
    labels, centroids, _ = run_kmeans(
        two, 2, spherical=False, normalize=False, n_init=1, backend="torch"
    )
    means = np.stack([two[labels == j].mean(axis=0) for j in range(2)])
    np.testing.assert_allclose(centroids, means, atol=1e-4)


def test_an_empty_cluster_takes_the_point_farthest_from_its_centroid():
    """Two identical initial centroids: the second wins no point (ties go to the first)."""
    x = torch.tensor([[0, 0], [0, 0.2], [1, 0], [5, 5], [5, 6], [9, 9]], dtype=torch.float32)
    init = torch.tensor([[0, 0], [0, 0], [5, 5]], dtype=torch.float32)
    labels, dist, c = lloyd(x, init, 1, spherical=False)
    assert torch.unique(labels).numel() == 3
    assert c[1].tolist() == [9, 9]  # the worst-served point after the first assignment
    assert labels[5] == 1 and dist[5] == 0


# --- choosing the backend --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faiss_gpu", "cuda", "faiss", "expected"),
    [
        (True, True, True, Backend("faiss", "cuda")),
        (False, True, True, Backend("torch", "cuda")),  # faiss-cpu on a GPU machine: torch
        (False, False, True, Backend("faiss", "cpu")),
        (False, False, False, Backend("torch", "cpu")),  # no faiss at all
        (False, True, False, Backend("torch", "cuda")),
    ],
)
def test_auto_never_leaves_a_gpu_machine_on_the_cpu(monkeypatch, faiss_gpu, cuda, faiss, expected):
    monkeypatch.setattr(backends, "faiss_gpu_available", lambda: faiss_gpu)
    monkeypatch.setattr(backends, "cuda_available", lambda: cuda)
    monkeypatch.setattr(backends, "faiss_importable", lambda: faiss)
    assert resolve_backend("auto") == expected
    assert resolve_backend("torch") == Backend("torch", "cuda" if cuda else "cpu")
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("sklearn")


def test_backend_names():
    assert [Backend(*b).name for b in [("faiss", "cuda"), ("faiss", "cpu"), ("torch", "cuda")]] == [
        "faiss-gpu",
        "faiss-cpu",
        "torch-cuda",
    ]
