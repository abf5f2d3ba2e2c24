"""Label-free baselines: Prototypicality (Sorscher et al.) and D2 pruning (Maharana et al.)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from coreset_lab.errors import UserError
from coreset_lab.run.config import CONF_DIR
from coreset_lab.scoring import SCORERS, Prototypicality, ScoreInputs
from coreset_lab.selection import D2, SELECTORS, TopK, coreset_size
from coreset_lab.selection.d2 import knn_graph

CONF = Path(CONF_DIR)


def rng(seed=0):
    return np.random.default_rng(seed)


def three_blobs(per=60, d=8, seed=0):
    r = rng(seed)
    centers = np.eye(d)[:3] * 10.0  # orthogonal directions: clean cosine clusters
    labels = np.repeat(np.arange(3), per)
    x = centers[labels] + r.normal(size=(3 * per, d))
    return x.astype(np.float32), labels.astype(np.int64)


# --- Prototypicality -------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", [True, False])
def test_prototypicality_ranks_outlier_hardest(normalize):
    x, labels = three_blobs()
    outlier = np.zeros((1, 8), dtype=np.float32)
    outlier[0, 5] = 10.0  # a direction (and place) far from every blob
    x = np.concatenate([x, outlier])
    pseudo = np.concatenate([labels, [0]])
    scorer = Prototypicality(normalize=normalize)
    scores = scorer(ScoreInputs(labels=pseudo, embeddings=x, seed=1))
    assert scores.dtype == np.float64 and scores.shape == (len(x),)
    assert int(np.argmax(scores)) == len(x) - 1
    assert np.all(scores >= -1e-6)
    if normalize:  # cosine distance to the own centroid
        assert np.all(scores <= 2.0 + 1e-6)


def test_prototypicality_scores_are_distances_to_own_centroid():
    x, labels = three_blobs(per=40)
    s = Prototypicality(normalize=True, n_init=2)(ScoreInputs(labels=labels, embeddings=x))
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    for c in range(3):  # the blobs are recovered exactly, so the clusters are the blobs
        m = z[labels == c].mean(axis=0)
        m /= np.linalg.norm(m)
        np.testing.assert_allclose(s[labels == c], 1.0 - z[labels == c] @ m, atol=1e-4)


def test_prototypicality_uses_labels_only_for_k():
    x, labels = three_blobs(per=30)
    scorer = Prototypicality()
    a = scorer(ScoreInputs(labels=labels, embeddings=x, seed=0))
    b = scorer(ScoreInputs(labels=rng(5).permutation(labels), embeddings=x, seed=0))
    np.testing.assert_array_equal(a, b)
    # an explicit k overrides the number of pseudo-classes
    c = Prototypicality(num_clusters=3)(ScoreInputs(labels=np.zeros(90, np.int64), embeddings=x))
    np.testing.assert_allclose(a, c, atol=1e-6)


def test_prototypicality_interface_and_errors():
    assert Prototypicality.needs == frozenset({"embeddings"})
    assert SCORERS["prototypicality"] is Prototypicality
    with pytest.raises(ValueError, match="needs embeddings"):
        Prototypicality()(ScoreInputs(labels=np.zeros(4, np.int64)))
    with pytest.raises(ValueError, match="embeddings must be"):
        Prototypicality()(ScoreInputs(labels=np.zeros(4, np.int64), embeddings=np.ones((3, 2))))
    with pytest.raises(UserError, match="n_init"):
        Prototypicality(n_init=0)
    s = instantiate(OmegaConf.load(CONF / "scorer" / "prototypicality.yaml"))
    assert isinstance(s, Prototypicality) and s.normalize is False and s.num_clusters is None
    assert Prototypicality().normalize is False


def test_prototypicality_default_is_euclidean_to_own_centroid_hand_checked():
    """ELFS' baseline: Euclidean distance of the raw embedding to its k-means centroid.
    Cluster A = (0,0), (3,0), (0,3): centroid (1,1), distances sqrt2, sqrt5, sqrt5.
    Cluster B = (100,100), (104,100): centroid (102,100), distances 2, 2."""
    x = np.array([[0, 0], [3, 0], [0, 3], [100, 100], [104, 100]], dtype=np.float32)
    s = Prototypicality(n_init=1)(ScoreInputs(labels=np.array([0, 0, 0, 1, 1]), embeddings=x))
    np.testing.assert_allclose(s, [2**0.5, 5**0.5, 5**0.5, 2.0, 2.0], rtol=1e-6)
    cos = Prototypicality(normalize=True, n_init=1)
    x2 = x + 1.0  # no zero vector for the cosine variant
    c = cos(ScoreInputs(labels=np.array([0, 0, 0, 1, 1]), embeddings=x2))
    assert np.all(c < 1.0)  # 1 - cos: a different scale and metric from ELFS' Euclidean score


def test_prototypicality_default_matches_the_elfs_computation():
    """ELFS: sklearn KMeans(K, random_state=0) on the raw embeddings, then
    np.linalg.norm(embedding - centroids[label]) (core/utils/misc.py)."""
    from sklearn.cluster import KMeans

    x, labels = three_blobs(per=40)
    x = x * np.array([1.0, 3.0, 0.5, 1, 1, 1, 1, 2.0], dtype=np.float32)  # raw, unnormalised
    ours = Prototypicality(n_init=2)(ScoreInputs(labels=labels, embeddings=x, seed=3))
    km = KMeans(n_clusters=3, random_state=0, n_init=10).fit(x.astype(np.float64))
    ref = np.linalg.norm(x - km.cluster_centers_[km.labels_], axis=1)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


# --- D2 --------------------------------------------------------------------------------------


def naive_d2(scores, x, budget, k, gf, gr):
    """Dense O(N^2) transcription of the rules (symmetric graph, argmax, lowest index on ties)."""
    n = len(scores)
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = z @ z.T
    np.fill_diagonal(cos, -np.inf)
    dist = np.sqrt(np.clip(2 - 2 * cos, 0, None))
    adj = np.zeros((n, n), dtype=bool)
    nbr = np.argsort(-cos, axis=1, kind="stable")[:, :k]
    adj[np.repeat(np.arange(n), k), nbr.ravel()] = True
    adj |= adj.T
    s = scores - scores.min()
    s = np.maximum(s, 1e-7 * s.max())
    density = s + (np.where(adj, np.exp(-gf * dist), 0.0) * s[None, :]).sum(axis=1)
    picked = []
    for _ in range(budget):
        i = int(np.argmax(density))
        picked.append(i)
        nb = np.flatnonzero(adj[i])
        density[nb] -= np.exp(-gr * dist[i, nb]) * density[i]
        density[i] = -np.inf
        density[picked] = -np.inf
    return np.array(picked)


@pytest.mark.parametrize("gf,gr,k", [(1.0, 1.0, 10), (1.0, 0.1, 5), (3.0, 2.0, 3)])
def test_d2_matches_dense_reference(gf, gr, k):
    r = rng(3)
    x = r.normal(size=(120, 6)).astype(np.float32)
    scores = r.random(120)
    sel = D2(prune_rate=0.6, k=k, gamma_forward=gf, gamma_reverse=gr)
    got = sel(scores, None, rng(), embeddings=x)
    budget = coreset_size(120, 0.6)
    ref = naive_d2(scores, x.astype(np.float64), budget, k, gf, gr)
    np.testing.assert_array_equal(got, np.sort(ref))


def two_densities(seed=0):
    """A tight, high-scoring cluster of 400 and a spread, low-scoring cluster of 100."""
    r = rng(seed)
    d = 8
    dense = np.eye(d)[0] * 10 + r.normal(size=(400, d)) * 0.3
    sparse = np.eye(d)[1] * 10 + r.normal(size=(100, d)) * 3.0
    x = np.concatenate([dense, sparse]).astype(np.float32)
    scores = np.concatenate([1.0 + r.random(400), 0.9 * r.random(100)])
    return x, scores, np.repeat([0, 1], [400, 100])


def test_d2_budget_sorted_deterministic_and_diverse():
    x, scores, group = two_densities()
    sel = D2(prune_rate=0.8, k=10)
    a = sel(scores, None, rng(0), embeddings=x)
    b = sel(scores, group, rng(99), embeddings=x)  # labels and rng play no part
    assert a.dtype == np.int64 and a.shape == (coreset_size(500, 0.8),) == (100,)
    assert np.all(np.diff(a) > 0) and a[0] >= 0 and a[-1] < 500
    np.testing.assert_array_equal(a, b)
    # plain top-k keeps only the dense, high-scoring cluster; D2 covers both
    top = TopK(prune_rate=0.8, keep="hard")(scores, None, rng())
    assert set(np.unique(group[top])) == {0}
    picked = np.bincount(group[a], minlength=2)
    assert picked[0] > 0 and picked[1] >= 20, picked


def test_d2_is_invariant_to_affine_score_changes():
    x, scores, _ = two_densities(seed=1)
    sel = D2(prune_rate=0.7, k=8, gamma_reverse=0.5)
    a = sel(scores, None, rng(), embeddings=x)
    b = sel(3.0 * scores - 7.0, None, rng(), embeddings=x)
    np.testing.assert_array_equal(a, b)


def test_d2_beta_drops_hardest_first():
    r = rng(4)
    x = r.normal(size=(200, 5)).astype(np.float32)
    scores = r.random(200)
    idx = D2(prune_rate=0.5, beta=0.2)(scores, None, rng(), embeddings=x)
    hardest = np.argsort(-scores)[:40]
    assert len(idx) == 100 and not set(idx) & set(hardest)
    # beta = prune_rate: all that is left is kept
    idx = D2(prune_rate=0.5, beta=0.5)(scores, None, rng(), embeddings=x)
    np.testing.assert_array_equal(idx, np.sort(np.argsort(-scores)[100:]))


def test_d2_constant_scores_and_tiny_inputs():
    x, _, group = two_densities()
    idx = D2(prune_rate=0.9, k=10)(np.zeros(500), None, rng(), embeddings=x)
    assert len(idx) == 50 and set(group[idx]) == {0, 1}  # pure density/diversity sampling
    one = D2(prune_rate=0.5)(np.array([1.0, 2.0]), None, rng(), embeddings=np.eye(2))
    assert one.tolist() == [1]
    assert D2(prune_rate=0.0)(np.arange(3.0), None, rng(), embeddings=np.eye(3)).tolist() == [
        0,
        1,
        2,
    ]


def test_d2_graph_is_symmetric_without_dense_matrices():
    r = rng(6)
    x = r.normal(size=(300, 4)).astype(np.float32)
    g = knn_graph(x, 5)
    assert g.shape == (300, 300) and (g != g.T).nnz == 0
    assert np.all(np.diff(g.indptr) >= 5) and g.diagonal().sum() == 0


def test_d2_interface_and_errors():
    assert D2.needs == {"embeddings"} and SELECTORS["d2"] is D2
    with pytest.raises(ValueError, match="needs embeddings"):
        D2()(np.arange(10.0), None, rng())
    with pytest.raises(ValueError, match="embeddings must be"):
        D2()(np.arange(10.0), None, rng(), embeddings=np.ones((9, 2)))
    with pytest.raises(ValueError, match="NaN"):
        D2()(np.array([1.0, np.nan, 2.0]), None, rng(), embeddings=np.eye(3))
    with pytest.raises(UserError, match="beta"):
        D2(prune_rate=0.3, beta=0.4)
    with pytest.raises(UserError, match="selector.k"):
        D2(k=0)
    sel = instantiate(OmegaConf.load(CONF / "selector" / "d2.yaml"))
    assert isinstance(sel, D2) and sel.prune_rate == 0.5 and sel.beta == 0.0
    # the d2pruning README's CIFAR command: N_NEIGHBOR=5, GAMMA=0.1 (gamma_forward fixed at 1)
    assert (sel.k, sel.gamma_reverse, sel.gamma_forward) == (5, 0.1, 1.0)
    assert (D2().k, D2().gamma_reverse) == (5, 0.1)
    x = rng().normal(size=(20, 3))
    assert sel(rng().normal(size=20), None, rng(), embeddings=x).shape == (10,)
