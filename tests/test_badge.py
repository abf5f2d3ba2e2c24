"""BADGE (protocol=badge): k-means++ seeding on gradient embeddings against an independent numpy
port, the factorised distances against the explicit embeddings, the rounds end to end on digits,
and the proof that it reads the ground-truth labels of the samples it selects and no others."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

import coreset_lab.run.pipeline as pipeline
from coreset_lab.data import TensorImageSet, build_dataset
from coreset_lab.errors import UserError
from coreset_lab.protocols.badge import (
    Badge,
    gradient_factors,
    gradient_kmeanspp,
    round_sizes,
    sqdist_to,
)
from coreset_lab.run.checks import check_against_data, check_config

SMALL = [
    "method=badge",
    "dataset=digits",
    "dataset.train_subset=200",
    "trainer=debug",
    "model.kwargs.width=8",
    "trainer.proxy_epochs=2",
    "trainer.target_iterations=5",
    "selector.prune_rate=0.7",
    "protocol.rounds=3",
]


def toy(n=80, c=4, d=6, seed=0):
    r = np.random.default_rng(seed)
    logits = r.normal(size=(n, c)) * 2.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs.astype(np.float32), r.normal(size=(n, d)).astype(np.float32)


# --- an independent port: explicit embeddings, as the reference code forms them --------------


def explicit_embeddings(probs: np.ndarray, features: np.ndarray) -> np.ndarray:
    """[N, C*d]: block c is h * (1 - p_c) for the predicted class c, h * (-p_c) otherwise
    (JordanAsh/badge's get_grad_embedding; the opposite sign of (p - e) ⊗ h, the same
    distances)."""
    p, h = probs.astype(np.float64), features.astype(np.float64)
    n, c = p.shape
    out = np.zeros((n, c * h.shape[1]))
    for i in range(n):
        top = int(np.argmax(p[i]))
        for k in range(c):
            w = (1.0 - p[i, k]) if k == top else -p[i, k]
            out[i, k * h.shape[1] : (k + 1) * h.shape[1]] = h[i] * w
    return out


def port_kmeanspp(g: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """k-means++ seeding on explicit vectors: the largest norm first, then each next row with
    probability D² / ΣD² (the first whose running sum of D² exceeds u·ΣD²); all D² zero: a
    uniform draw among the rows left."""
    first = int(np.argmax((g**2).sum(1)))
    chosen = [first]
    d2 = ((g - g[first]) ** 2).sum(1)
    d2[first] = 0.0
    while len(chosen) < k:
        running = np.cumsum(d2)
        if running[-1] > 0:
            j = int(np.searchsorted(running, rng.random() * running[-1], side="right"))
        else:
            left = np.setdiff1d(np.arange(len(g)), chosen)
            j = int(rng.choice(left))
        chosen.append(j)
        d2 = np.minimum(d2, ((g - g[j]) ** 2).sum(1))
        d2[j] = 0.0
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 7, 40])
def test_kmeanspp_picks_what_the_numpy_port_picks(seed, k):
    probs, features = toy(seed=seed)
    want = port_kmeanspp(explicit_embeddings(probs, features), k, np.random.default_rng(seed))
    got = gradient_kmeanspp(
        probs, features, k, np.random.default_rng(seed), chunk_size=13, device="cpu"
    )
    assert got.tolist() == want
    assert len(set(want)) == k
    # the chunking is memory only
    again = gradient_kmeanspp(probs, features, k, np.random.default_rng(seed), device="cpu")
    assert again.tolist() == want


def test_kmeanspp_first_pick_is_the_largest_gradient_and_inputs_stay_untouched():
    probs, features = toy(seed=3)
    before = probs.copy(), features.copy()
    g = explicit_embeddings(probs, features)
    first = gradient_kmeanspp(probs, features, 1, np.random.default_rng(0), device="cpu")
    assert first.tolist() == [int(np.argmax((g**2).sum(1)))]
    for p64 in (probs.astype(np.float64),):  # float64 inputs are not modified in place either
        kept = p64.copy()
        gradient_kmeanspp(p64, features, 5, np.random.default_rng(0), device="cpu")
        np.testing.assert_array_equal(p64, kept)
    np.testing.assert_array_equal(probs, before[0])
    np.testing.assert_array_equal(features, before[1])


def test_kmeanspp_when_every_gradient_is_zero_draws_uniformly_and_never_twice():
    """A model certain of every sample (one-hot probabilities) has g = 0 everywhere: the picks
    are uniform draws among the samples left, all distinct, up to all of them."""
    probs = np.eye(3, dtype=np.float32)[np.arange(12) % 3]
    features = np.ones((12, 4), dtype=np.float32)
    got = gradient_kmeanspp(probs, features, 12, np.random.default_rng(5), device="cpu")
    assert sorted(got.tolist()) == list(range(12))
    want = port_kmeanspp(explicit_embeddings(probs, features), 12, np.random.default_rng(5))
    assert got.tolist() == want


def test_factorised_distances_equal_the_explicit_ones():
    probs, features = toy(n=50, c=7, d=9, seed=4)
    g = explicit_embeddings(probs, features)
    a, h, sq = gradient_factors(probs, features, "cpu", chunk_size=8)
    np.testing.assert_allclose(sq.numpy(), (g**2).sum(1), rtol=1e-12, atol=1e-12)
    # a = p - onehot(argmax p): the reference's block weights with the opposite sign
    top = probs.argmax(1)
    np.testing.assert_allclose(a.numpy()[np.arange(50), top], probs[np.arange(50), top] - 1.0,
                               rtol=1e-7)  # fmt: skip
    for c in range(50):
        explicit = ((g - g[c]) ** 2).sum(1)
        got = sqdist_to(a, h, sq, c, chunk_size=11).numpy()
        np.testing.assert_allclose(got, explicit, rtol=1e-9, atol=1e-10)
        assert got[c] == pytest.approx(0.0, abs=1e-10) and (got >= 0).all()


def test_round_sizes_and_refusals():
    assert round_sizes(60, 3, 0.1) == [6, 24, 42, 60]
    assert round_sizes(135, 9, 0.1)[0] == 14 and round_sizes(135, 9, 0.1)[-1] == 135
    with pytest.raises(UserError, match="protocol.rounds=5 needs at least 5 samples"):
        round_sizes(5, 5, 0.5)
    with pytest.raises(UserError, match="protocol.rounds"):
        Badge(rounds=0)
    with pytest.raises(UserError, match="protocol.initial_fraction"):
        Badge(initial_fraction=1.0)
    assert Badge().label(None, None, {}) == "badge"
    assert Badge(rounds=4, initial_fraction=0.2).label(None, None, {}) == "badge-r4-init0.2"
    assert "chunk_size" not in Badge(chunk_size=8).identity(None, None)


def test_badge_refuses_a_scorer_or_selector_it_would_ignore(make_cfg):
    for extra in (["selector=topk"], ["scorer=el2n"]):
        cfg, _ = make_cfg(*SMALL, *extra)
        with pytest.raises(UserError, match=r"protocol=badge chooses its samples itself \(k"):
            check_config(cfg)
    cfg, _ = make_cfg(*SMALL, "protocol.rounds=200")
    parts = check_config(cfg)
    with pytest.raises(UserError, match="protocol.rounds=200 needs at least 200 samples"):
        check_against_data(cfg, parts, build_dataset(**cfg.dataset))


# --- end to end ------------------------------------------------------------------------------


def _run(make_cfg, tmp_path, name: str, *extra: str):
    out = tmp_path / name
    cfg, choices = make_cfg(
        *SMALL, f"paths.store_dir={tmp_path}/{name}-store", f"paths.output_dir={out}", *extra
    )
    result = pipeline.run(cfg, choices)
    return result, np.load(out / "coreset.npy"), out


def test_badge_runs_its_rounds_on_digits(make_cfg, tmp_path):
    result, coreset, out = _run(make_cfg, tmp_path, "run")
    assert result["status"] == "ok" and result["method"] == "badge-r3"
    assert result["protocol"] == "badge" and result["coreset_size"] == 60 == coreset.size
    assert 0.0 <= result["test_accuracy"] <= 1.0
    facts = result["badge"]
    assert facts["round_sizes"] == [6, 24, 42, 60]
    assert facts["round_additions"] == [6, 18, 18, 18] and facts["labels_read"] == 60
    assert [m["trained_on"] for m in facts["models"]] == [6, 24, 42]
    assert result["cost"]["models_trained"] == 3
    assert result["identity"]["protocol"] == {"name": "badge", "rounds": 3,
                                              "initial_fraction": 0.1}  # fmt: skip
    with open(out / "coreset.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["subset_index"]) for r in rows] == coreset.tolist()
    rounds = np.bincount([int(r["round"]) for r in rows])
    assert rounds.tolist() == [6, 18, 18, 18]
    assert not (out / "scores.npy").exists()  # nothing is scored
    # each round's model kept its penultimate features; ||h||² is the one predict() returns
    store = tmp_path / "run-store" / "scoring_model"
    kept = sorted(store.glob("*/features.npy"))
    assert len(kept) == 3
    for path in kept:
        h = np.load(path)
        assert h.shape == (200, 32)  # small_cnn width 8, depth 3: 8 * 2**2 channels
        sqnorm = np.load(path.with_name("feature_sqnorm.npy"))
        np.testing.assert_allclose((h.astype(np.float64) ** 2).sum(1), sqnorm, rtol=1e-5)
        spec = json.loads((path.parent / "artifact.json").read_text())["spec"]
        assert spec["record_features"] is True


def _corrupted(keep: np.ndarray):
    """build_dataset with every train label outside `keep` (subset positions) changed."""

    def build(**kwargs):
        data = build_dataset(**kwargs)
        labels = data.train_targets.copy()
        other = np.setdiff1d(np.arange(labels.size), keep)
        labels[other] = (labels[other] + 1 + other % 3) % data.num_classes
        train = TensorImageSet(data.train.images, labels)
        train_eval = TensorImageSet(data.train_eval.images, labels)
        return dataclasses.replace(data, train=train, train_eval=train_eval)

    return build


def test_badge_reads_the_labels_of_the_samples_it_selects_and_no_others(
    make_cfg, tmp_path, monkeypatch
):
    honest, coreset, out = _run(make_cfg, tmp_path, "honest")
    truth = build_dataset("digits", train_subset=200).train_targets
    monkeypatch.setattr(pipeline, "build_dataset", _corrupted(coreset))
    blind, blind_coreset, _ = _run(make_cfg, tmp_path, "corrupted")
    np.testing.assert_array_equal(blind_coreset, coreset)
    assert blind["test_accuracy"] == honest["test_accuracy"]  # the target sees the same labels
    assert blind["badge"] == honest["badge"]
    # the corruption was real: 140 of the 200 labels differ
    corrupted = _corrupted(coreset)(name="digits", train_subset=200).train_targets
    assert (corrupted != truth).sum() == 140 and (corrupted[coreset] == truth[coreset]).all()
    # and the test can fail: one label of the random batch changed changes the later rounds
    with open(out / "coreset.csv", newline="") as fh:
        first = [int(r["subset_index"]) for r in csv.DictReader(fh) if r["round"] == "0"][:1]
    monkeypatch.setattr(pipeline, "build_dataset", _corrupted(np.setdiff1d(coreset, first)))
    _, moved, _ = _run(make_cfg, tmp_path, "one-selected-label")
    assert not np.array_equal(moved, coreset)


def test_keeping_the_features_keeps_predicts_outputs():
    from coreset_lab.models import build_model
    from coreset_lab.training.module import ClassifierModule
    from coreset_lab.training.predict import predict
    from coreset_lab.training.recipe import Recipe

    data = build_dataset("digits", train_subset=64)
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, data.in_channels, data.image_size, width=4, depth=2)
    recipe = Recipe.from_config({"accelerator": "cpu"})
    module = ClassifierModule(model, data.train_targets, recipe, data.mean, data.std,
                              data.augment, 0)  # fmt: skip
    plain = predict(module, data.train_eval)
    probs, sqnorm = plain.probs, plain.feature_sqnorm
    kept = predict(module, data.train_eval, keep_features=True)
    probs2, sqnorm2, h = kept.probs, kept.feature_sqnorm, kept.features
    np.testing.assert_array_equal(probs, probs2)
    np.testing.assert_array_equal(sqnorm, sqnorm2)
    assert h.shape == (64, 8) and h.dtype == np.float32
    np.testing.assert_allclose((h.astype(np.float64) ** 2).sum(1), sqnorm, rtol=1e-5)
