"""The baselines of issue 21: k-center greedy, Moderate-DS, GraNd and Dyn-Unc.

Each is checked against a small independent port of its reference definition (written here from
the reference code's rules, not from ours), for "higher = harder" where it scores, and once end
to end on digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from coreset_lab.dynamics import Dynamics
from coreset_lab.errors import UserError
from coreset_lab.run.config import CONF_DIR
from coreset_lab.scoring import (
    SCORERS,
    DynamicUncertainty,
    GraNd,
    MedianDistance,
    ScoreInputs,
)
from coreset_lab.selection import SELECTORS, KCenterGreedy, Moderate, coreset_size

CONF = Path(CONF_DIR)


def rng(seed=0):
    return np.random.default_rng(seed)


# --- k-center greedy -------------------------------------------------------------------------


def deepcore_k_center(x: np.ndarray, budget: int, first: int) -> list[int]:
    """DeepCore's k_center_greedy, dense: first centre given, then argmax of the min distance
    (sqrt of the clamped expansion, as its euclidean_dist) with selected points at -1."""
    x = x.astype(np.float64)
    sq = (x**2).sum(1)
    selected = [first]
    mins = np.sqrt(np.clip(sq + sq[first] - 2 * x @ x[first], 1e-12, None))
    mins[first] = -1
    while len(selected) < budget:
        p = int(np.argmax(mins))
        selected.append(p)
        d = np.sqrt(np.clip(sq + sq[p] - 2 * x @ x[p], 1e-12, None))
        mins = np.minimum(mins, d)
        mins[selected] = -1
    return selected


@pytest.mark.parametrize("n,rate,chunk", [(60, 0.5, 7), (97, 0.9, 1000), (40, 0.1, 3)])
def test_kcenter_matches_deepcore(n, rate, chunk):
    x = rng(n).normal(size=(n, 5)).astype(np.float32)
    got = KCenterGreedy(prune_rate=rate, chunk_size=chunk, device="cpu")(
        np.zeros(n), None, rng(3), embeddings=x
    )
    budget = coreset_size(n, rate)
    first = int(rng(3).integers(n))  # the first centre: uniform, from the run's rng
    ref = deepcore_k_center(x, budget, first)
    assert len(set(ref)) == budget
    np.testing.assert_array_equal(got, np.sort(ref))


def covering_radius(x, idx):
    d = np.linalg.norm(x[:, None, :] - x[None, idx, :], axis=2)
    return d.min(axis=1).max()


def test_kcenter_covers_better_than_random_and_reads_no_scores_or_labels():
    r = rng(1)
    x = np.concatenate([r.normal(size=(300, 4)), r.normal(size=(20, 4)) + 8.0]).astype(np.float32)
    sel = KCenterGreedy(prune_rate=0.9, device="cpu")
    a = sel(np.zeros(320), None, rng(0), embeddings=x)
    b = sel(r.normal(size=320), np.arange(320) % 3, rng(0), embeddings=x)
    np.testing.assert_array_equal(a, b)
    c = sel(np.full(320, np.nan), None, rng(0), embeddings=x)  # the scores are not read
    np.testing.assert_array_equal(a, c)
    assert a.shape == (32,) and a.dtype == np.int64 and np.all(np.diff(a) > 0)
    assert (a >= 300).any()  # the small far blob is covered
    rand = np.sort(rng(5).choice(320, 32, replace=False))
    assert covering_radius(x, a) < covering_radius(x, rand)
    # another seed, another first centre
    assert not np.array_equal(a, sel(np.zeros(320), None, rng(1), embeddings=x))


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 0.99])
def test_kcenter_exact_budget_with_duplicates(rate):
    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)  # 3 distinct points, 10 copies each
    idx = KCenterGreedy(prune_rate=rate, device="cpu")(np.zeros(30), None, rng(), embeddings=x)
    assert idx.shape == (coreset_size(30, rate),) and len(np.unique(idx)) == len(idx)
    if len(idx) >= 3:
        assert {tuple(v) for v in x[idx]} == {(1, 0, 0), (0, 1, 0), (0, 0, 1)}


def test_kcenter_interface_and_errors():
    assert KCenterGreedy.needs == {"embeddings"} and SELECTORS["kcenter"] is KCenterGreedy
    assert KCenterGreedy.uses_scores is False
    with pytest.raises(ValueError, match="needs embeddings"):
        KCenterGreedy()(np.zeros(5), None, rng())
    with pytest.raises(ValueError, match="embeddings must be"):
        KCenterGreedy()(np.zeros(5), None, rng(), embeddings=np.ones((4, 2)))
    with pytest.raises(UserError, match="selector.chunk_size"):
        KCenterGreedy(chunk_size=0)
    with pytest.raises(UserError, match="selector.device"):
        KCenterGreedy(device="tpu")
    sel = instantiate(OmegaConf.load(CONF / "selector" / "kcenter.yaml"))
    assert isinstance(sel, KCenterGreedy) and sel.device == "auto"


# --- Moderate-DS -----------------------------------------------------------------------------


def moderate_ds_distance(features, targets):
    """tmlr-group/Moderate-DS get_median + get_distance."""
    out = np.zeros(len(features))
    for c in np.unique(targets):
        med = np.median(features[targets == c], axis=0)
        out[targets == c] = np.linalg.norm(features[targets == c] - med, axis=1)
    return out


def moderate_ds_kept(distance, keep_fraction):
    """tmlr-group/Moderate-DS get_prune_idx: prune both ends of the ascending ranking."""
    n = distance.shape[0]
    order = distance.argsort(kind="stable")
    low, high = round(n * (0.5 - keep_fraction / 2)), round(n * (0.5 + keep_fraction / 2))
    pruned = np.concatenate([order[:low], order[high:]])
    return np.setdiff1d(np.arange(n), pruned)


def test_median_distance_matches_moderate_ds():
    r = rng(2)
    labels = r.integers(0, 4, 201)
    x = (r.normal(size=(201, 6)) * [1, 2, 3, 1, 1, 5] + labels[:, None]).astype(np.float32)
    got = MedianDistance()(ScoreInputs(labels=labels, embeddings=x))
    np.testing.assert_allclose(got, moderate_ds_distance(x.astype(np.float64), labels), rtol=1e-6)
    assert got.dtype == np.float64


def test_median_distance_higher_is_farther_from_the_class_median():
    x = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [9, 9], [50, 50], [51, 50]], np.float32)
    labels = np.array([0, 0, 0, 0, 0, 1, 1])
    s = MedianDistance()(ScoreInputs(labels=labels, embeddings=x))
    assert int(np.argmax(s[:5])) == 4  # the outlier of class 0 is its hardest
    assert s[0] == 0.0  # the median of class 0 is (0, 0)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.7, 0.9])
def test_moderate_keeps_the_middle_band_as_moderate_ds(rate):
    n = 200  # N - k even at these rates: the reference's two rounds agree with the budget
    d = rng(int(rate * 10)).random(n)
    got = Moderate(prune_rate=rate)(d, None, rng())
    keep = coreset_size(n, rate)
    ref = moderate_ds_kept(d, keep / n)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("n,rate", [(7, 0.5), (10, 0.3), (1, 0.5), (33, 0.9), (5, 0.0)])
def test_moderate_exact_budget_drops_both_ends(n, rate):
    scores = np.arange(n, dtype=np.float64)[::-1].copy()  # the ranking is the reverse index
    idx = Moderate(prune_rate=rate)(scores, None, rng())
    k = coreset_size(n, rate)
    assert idx.shape == (k,)
    kept = np.sort(scores[idx])
    low = (n - k) // 2
    np.testing.assert_array_equal(kept, np.arange(low, low + k))  # a contiguous middle band


def test_moderate_interface():
    assert SELECTORS["moderate"] is Moderate and Moderate.needs == frozenset()
    assert SCORERS["median_distance"] is MedianDistance
    assert MedianDistance.needs == {"embeddings"}
    with pytest.raises(ValueError, match="needs embeddings"):
        MedianDistance()(ScoreInputs(labels=np.zeros(3, np.int64)))
    with pytest.raises(ValueError, match="NaN"):
        Moderate()(np.array([1.0, np.nan]), None, rng())


# --- GraNd -----------------------------------------------------------------------------------


def last_layer_grad_norms(h, w, b, y):
    """Per-sample norm of d CE / d(W, b) of z = W h + b, by autograd (the definition)."""
    import torch

    out = []
    for i in range(len(y)):
        wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
        z = wt @ torch.tensor(h[i], dtype=torch.float64) + bt
        loss = torch.nn.functional.cross_entropy(z[None], torch.tensor([int(y[i])]))
        gw, gb = torch.autograd.grad(loss, [wt, bt])
        out.append(float(torch.sqrt((gw**2).sum() + (gb**2).sum())))
    return np.array(out)


def test_grand_is_the_exact_last_layer_gradient_norm():
    r = rng(4)
    n, d, c = 12, 5, 3
    y = r.integers(0, c, n)
    h, w, b = r.normal(size=(n, d)), r.normal(size=(c, d)), r.normal(size=c)
    z = h @ w.T + b
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    inputs = ScoreInputs(labels=y, probs=p.astype(np.float32), feature_sqnorm=(h**2).sum(-1))
    got = GraNd()(inputs)
    np.testing.assert_allclose(got, last_layer_grad_norms(h, w, b, y), rtol=1e-5)
    # DeepCore's expression: norm of [bias grad, (h x bias grad) flattened]
    g = p - np.eye(c)[y]
    deepcore = np.linalg.norm(
        np.concatenate([g, (g[:, :, None] * h[:, None, :]).reshape(n, -1)], 1), axis=1
    )
    np.testing.assert_allclose(got, deepcore, rtol=1e-5)


def test_the_feature_norms_are_those_of_the_classifier_input():
    """The norms read beside the probabilities are ||h||^2 of the input of the last linear
    layer: recomputed here from small_cnn's own forward_features."""
    import torch

    from coreset_lab.data import build_dataset
    from coreset_lab.models import build_model
    from coreset_lab.training.module import ClassifierModule
    from coreset_lab.training.predict import predict
    from coreset_lab.training.recipe import Recipe
    from coreset_lab.training.resident import eval_batches

    digits = build_dataset("digits")
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, 1, 8, width=8, depth=2)
    module = ClassifierModule(
        model, digits.train_targets, Recipe(), digits.mean, digits.std, digits.augment
    )
    out = predict(module, digits.test)
    probs, sqnorm = out.probs, out.feature_sqnorm
    h = []
    with torch.no_grad():
        for x, _ in eval_batches(digits.test, torch.device("cpu"), batch_size=100):
            h.append(model.forward_features(module.normalize(x)))
    h = torch.cat(h)
    np.testing.assert_allclose(sqnorm, (h**2).sum(1).numpy(), rtol=1e-4)
    np.testing.assert_allclose(probs, model.fc(h).softmax(1).detach().numpy(), rtol=1e-4, atol=1e-6)


def test_grand_higher_is_harder():
    y = np.zeros(3, dtype=np.int64)
    p = np.array([[0.98, 0.01, 0.01], [0.01, 0.98, 0.01], [0.4, 0.35, 0.25]])  # easy, wrong, unsure
    s = GraNd()(ScoreInputs(labels=y, probs=p, feature_sqnorm=np.ones(3)))
    assert s[1] > s[2] > s[0]
    # a larger feature norm is a larger gradient at the same probabilities
    t = GraNd()(ScoreInputs(labels=y, probs=p, feature_sqnorm=np.array([1.0, 1.0, 9.0])))
    assert t[2] > s[2] and t[0] == s[0]
    assert SCORERS["grand"] is GraNd and GraNd.needs == {"probs", "features"}


# --- Dyn-Unc ---------------------------------------------------------------------------------


def dynunc_official(p_label: np.ndarray, window: int) -> np.ndarray:
    """BAAI-DCAI/Dataset-Pruning ImageNet/get_coreset.py: a rolling buffer of `window` epochs,
    torch.std (unbiased) * 10 appended for idx >= window-1 and idx < epochs-1, then the mean."""
    epochs, n = p_label.shape
    buf = np.zeros((n, window))
    hist = []
    for idx in range(epochs):
        buf = np.concatenate([buf[:, 1:], p_label[idx][:, None]], axis=1)
        if window - 1 <= idx < epochs - 1:
            hist.append(np.std(buf, axis=1, ddof=1) * 10)
    return np.mean(hist, axis=0)


def dynunc_paper(p_label: np.ndarray, window: int) -> np.ndarray:
    """He et al., eq. of U: mean over k = 0..T-J of the sample std of P over epochs k..k+J-1."""
    t = p_label.shape[0]
    return np.mean([p_label[k : k + window].std(axis=0, ddof=1) for k in range(t - window + 1)], 0)


@pytest.mark.parametrize("window", [2, 3, 5])
def test_dynunc_matches_paper_and_official_code(window):
    r = rng(window)
    y = r.integers(0, 3, 40)
    dyn = Dynamics.from_logits(r.normal(size=(8, 40, 3)) * 2, y)
    p = dyn.p_label.astype(np.float64)
    got = DynamicUncertainty(window=window)(ScoreInputs(labels=y, dynamics=dyn))
    np.testing.assert_allclose(got, dynunc_paper(p, window), rtol=1e-10)
    code = DynamicUncertainty(window=window, drop_last_window=True)
    np.testing.assert_allclose(
        10 * code(ScoreInputs(labels=y, dynamics=dyn)), dynunc_official(p, window), rtol=1e-10
    )


def test_dynunc_higher_is_more_uncertain_and_partial_records():
    y = np.zeros(3, dtype=np.int64)
    steady = [[4.0, 0.0]] * 6
    swinging = [[4.0, 0.0], [0.0, 4.0]] * 3
    drifting = [[k - 2.5, 0.0] for k in range(6)]
    dyn = Dynamics.from_logits(np.array([steady, swinging, drifting]).transpose(1, 0, 2), y)
    s = DynamicUncertainty(window=3)(ScoreInputs(labels=y, dynamics=dyn))
    assert s[1] > s[2] > s[0] >= 0.0
    # a window counts only where all its epochs were recorded; none complete -> NaN
    dyn.seen[[1, 4], 2] = False  # sample 2: every window of 3 epochs misses epoch 1 or 4
    dyn.seen[2, 1] = False  # sample 1: only the window over epochs 3..5 is complete
    s2 = DynamicUncertainty(window=3)(ScoreInputs(labels=y, dynamics=dyn))
    assert np.isnan(s2[2]) and s2[0] == s[0]
    np.testing.assert_allclose(s2[1], dyn.p_label[3:6, 1].astype(np.float64).std(ddof=1))


def test_dynunc_errors_and_config():
    y = np.zeros(2, dtype=np.int64)
    dyn = Dynamics.from_logits(rng().normal(size=(4, 2, 2)), y)
    with pytest.raises(UserError, match="scorer.window=5 needs at least 5"):
        DynamicUncertainty(window=5)(ScoreInputs(labels=y, dynamics=dyn))
    with pytest.raises(UserError, match="at least 5"):
        DynamicUncertainty(window=4, drop_last_window=True)(ScoreInputs(labels=y, dynamics=dyn))
    with pytest.raises(UserError, match="scorer.window"):
        DynamicUncertainty(window=1)
    s = instantiate(OmegaConf.load(CONF / "scorer" / "dynunc.yaml"))
    assert isinstance(s, DynamicUncertainty) and s.window == 10 and not s.drop_last_window
    assert SCORERS["dynunc"] is DynamicUncertainty


# --- end to end on digits --------------------------------------------------------------------

FAST = [
    "dataset=digits",
    "dataset.train_subset=200",
    "model.kwargs.width=8",
    "trainer=debug",
    "trainer.target_iterations=5",
    "selector.prune_rate=0.7",
]
E2E = [
    (["method=kcenter"], "kcenter[pca]"),
    (["method=moderate", "clustering.n_init=1"], "moderate[pca]"),
    (["method=grand"], "grand"),
    (["method=dynunc", "trainer.proxy_epochs=3", "scorer.window=2"], "dynunc"),
]


@pytest.mark.parametrize("overrides,label", E2E, ids=[e[1] for e in E2E])
def test_presets_run_end_to_end(make_cfg, overrides, label):
    from coreset_lab.run.pipeline import run

    cfg, choices = make_cfg(*FAST, *overrides)
    result = run(cfg, choices)
    assert result["status"] == "ok" and result["method"] == label
    assert result["coreset_size"] == coreset_size(200, 0.7) == 60
