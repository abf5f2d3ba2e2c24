"""UNSEEN: K-fold held-out scoring, incremental selection, parallel folds, diagnostics, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from coreset_lab.data import build_dataset
from coreset_lab.errors import UserError
from coreset_lab.protocols.folds import check_folds, fold_plan, stratified_folds
from coreset_lab.protocols.incremental import (
    StageScores,
    allocate,
    incremental_selection,
    stage_sizes,
)
from coreset_lab.protocols.unseen import heldout_scores, normalize
from coreset_lab.registry import instantiate as build
from coreset_lab.run.pipeline import run
from coreset_lab.scoring import Margin
from coreset_lab.selection import TopK, coreset_size
from coreset_lab.services.context import RunContext
from coreset_lab.services.models import ModelService
from coreset_lab.store.artifacts import ArtifactStore
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
# 200 digits (20 per class), a narrow CNN and 2-epoch scoring models: each model trains in ~1 s.
FAST = ["protocol=unseen", "trainer=debug", "dataset.train_subset=200", "model.kwargs.width=8"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is much faster than two on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread_env(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _run(make_cfg, *overrides):
    """pipeline.run on a composed config, as the CLI calls it (without the `hydra` node)."""
    cfg, choices = make_cfg(*overrides)
    return run(cfg, choices)


def _labels(seed=0, sizes=(13, 7, 30, 5)):
    rng = np.random.default_rng(seed)
    return rng.permutation(np.repeat(np.arange(len(sizes)), sizes))


# --- folds -----------------------------------------------------------------------------------


def test_fold_split_is_stratified_seeded_and_a_partition():
    labels = _labels()
    k = 5
    assign = stratified_folds(labels, k, seed=3)
    assert assign.shape == labels.shape and set(assign) == set(range(k))
    for c in np.unique(labels):  # every class spread as evenly as possible
        per_fold = np.bincount(assign[labels == c], minlength=k)
        assert per_fold.max() - per_fold.min() <= 1
    sizes = np.bincount(assign, minlength=k)
    assert sizes.max() - sizes.min() <= 1
    np.testing.assert_array_equal(assign, stratified_folds(labels, k, seed=3))
    assert not np.array_equal(assign, stratified_folds(labels, k, seed=4))
    for mode in ("fold", "complement"):
        trained = []
        for fold in range(k):
            train, scored = fold_plan(assign, fold, mode)
            assert np.intersect1d(train, scored).size == 0
            np.testing.assert_array_equal(np.sort(np.r_[train, scored]), np.arange(labels.size))
            trained.append(train if mode == "fold" else scored)
        # the folds (fold mode: training sets; complement: scored sets) partition the data
        np.testing.assert_array_equal(np.sort(np.concatenate(trained)), np.arange(labels.size))


@pytest.mark.parametrize("folds", [1, 0, 6, 2.5, True])
def test_bad_fold_counts_name_the_key(folds):
    with pytest.raises(UserError, match=r"protocol\.folds"):
        check_folds(folds, _labels())  # smallest class has 5 samples


@pytest.mark.parametrize(
    "option, value, key",
    [
        ("mode", "both", "protocol.mode"),
        ("normalize", "minmax", "protocol.normalize"),
        ("stages", 0, "protocol.stages"),
        ("initial_fraction", 0.0, "protocol.initial_fraction"),
        ("schedule", "cosine", "protocol.schedule"),
        ("workers", 0, "protocol.workers"),
        ("class_aware", "yes", "protocol.class_aware"),
        ("fols", 3, "fols"),
    ],
)
def test_bad_unseen_options_are_user_errors(option, value, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        build(OmegaConf.create({"_target_": "coreset_lab.protocols.unseen.Unseen", option: value}))


def test_scorers_without_model_outputs_are_refused(make_cfg):
    from coreset_lab.run.checks import check_config

    with pytest.raises(UserError, match="logits"):
        check_config(make_cfg("protocol=unseen", "scorer=tdds")[0])
    with pytest.raises(UserError, match="embeddings come from protocol=elfs"):
        check_config(make_cfg("protocol=unseen", "scorer=prototypicality")[0])
    with pytest.raises(UserError, match="uses no model"):
        check_config(make_cfg("protocol=unseen", "scorer=random")[0])
    check_config(make_cfg("protocol=unseen", "scorer=margin")[0])


def test_normalize_rank_and_zscore():
    s = np.array([3.0, 1.0, 2.0, 2.0, 10.0])
    np.testing.assert_allclose(normalize(s, "rank"), [0.75, 0.0, 0.375, 0.375, 1.0])
    z = normalize(s, "zscore")
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    assert np.array_equal(np.argsort(z, kind="stable"), np.argsort(s, kind="stable"))
    np.testing.assert_array_equal(normalize(np.full(4, 7.0), "zscore"), np.zeros(4))
    np.testing.assert_array_equal(normalize(s, "none"), s)


# --- stage schedule and incremental selection (no training) ----------------------------------


def test_stage_sizes_linear_and_geometric_end_exactly_at_the_budget():
    assert stage_sizes(405, 4, 0.5, "linear") == [203, 270, 338, 405]
    geo = stage_sizes(405, 4, 0.25, "geometric")
    assert geo[0] == 101 and geo[-1] == 405
    assert np.all(np.diff(np.diff(geo)) > 0)  # additions grow
    lin = stage_sizes(1000, 5, 0.2, "linear")
    assert len(set(np.diff(lin))) == 1  # equal additions
    assert stage_sizes(37, 1, 0.5, "geometric") == [37]
    assert stage_sizes(10, 10, 0.05, "geometric") == list(range(1, 11))
    with pytest.raises(UserError, match=r"protocol\.stages"):
        stage_sizes(10, 4, 1.0, "linear")


def test_allocate_is_proportional_exact_and_capped():
    np.testing.assert_array_equal(allocate([0.4, 0.1], [100, 100], 50), [40, 10])
    np.testing.assert_array_equal(allocate([0.9, 0.1], [5, 100], 50), [5, 45])  # capped
    np.testing.assert_array_equal(allocate([0.0, 0.0], [30, 10], 20), [15, 5])  # no error: sizes
    q = allocate([1.0, 1.0, 1.0], [10, 10, 10], 10)
    assert q.sum() == 10 and q.max() - q.min() <= 1


def _fake_stages(labels, scores_by_stage, errors_by_stage, calls):
    def score_stage(stage, coreset):
        calls.append((stage, coreset.copy()))
        return StageScores(scores_by_stage[stage], errors_by_stage.get(stage))

    return score_stage


def test_incremental_selection_adds_the_top_unselected_samples_per_stage():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    first = rng.random(100)
    later = {2: rng.random(100), 3: rng.random(100)}
    sizes = stage_sizes(coreset_size(100, 0.7), 3, 0.5, "linear")  # [15, 23, 30]
    calls = []
    res = incremental_selection(
        labels,
        TopK(0.7, keep="hard"),
        sizes,
        StageScores(first),
        _fake_stages(labels, later, {}, calls),
        np.random.default_rng(0),
    )
    assert res.coreset.size == 30 and sizes == [15, 23, 30]
    assert [int((res.stage_of == t).sum()) for t in (1, 2, 3)] == [15, 8, 7]
    expected = set(np.argsort(-first)[:15])
    assert set(np.flatnonzero(res.stage_of == 1)) == expected
    for (stage, coreset), n_before in zip(calls, sizes[:-1], strict=True):
        assert coreset.size == n_before
        pool = np.setdiff1d(np.arange(100), coreset)
        added = np.flatnonzero(res.stage_of == stage)
        top = pool[np.argsort(-later[stage][pool], kind="stable")][: added.size]
        np.testing.assert_array_equal(np.sort(top), added)


def test_class_aware_shifts_additions_toward_the_worse_class():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 60)
    first = rng.random(120)
    scores = {2: rng.random(120)}
    sizes = [24, 48]
    common = dict(labels=labels, selector=TopK(0.6), sizes=sizes, rng=np.random.default_rng(0))
    plain = incremental_selection(
        first=StageScores(first, np.array([0.4, 0.1])),
        score_stage=_fake_stages(labels, scores, {2: np.array([0.0, 0.3])}, []),
        class_aware=False,
        **common,
    )
    aware = incremental_selection(
        first=StageScores(first, np.array([0.4, 0.1])),
        score_stage=_fake_stages(labels, scores, {2: np.array([0.0, 0.3])}, []),
        class_aware=True,
        **common,
    )
    assert aware.quotas == [[19, 5], [0, 24]]  # 24 * 0.4/0.5 = 19.2; stage 2 all to class 1
    for t, quota in zip((1, 2), aware.quotas, strict=True):
        added = np.flatnonzero(aware.stage_of == t)
        assert np.bincount(labels[added], minlength=2).tolist() == quota
    plain_first = np.bincount(labels[plain.stage_of == 1], minlength=2)
    assert aware.quotas[0][0] > plain_first[0] and aware.coreset.size == plain.coreset.size == 48


# --- held-out scoring with real models (digits) ----------------------------------------------


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    return tmp_path_factory.mktemp("unseen_store")


@pytest.fixture
def ctx_for(make_cfg, shared_store):
    """A RunContext for the given overrides; a store shared by the tests of this module."""
    store = shared_store

    def _ctx(*overrides):
        cfg, _ = make_cfg(*FAST, f"paths.store_dir={store}", *overrides)
        data = build_dataset(**cfg.dataset)
        store_ = ArtifactStore(cfg.paths.store_dir)
        return RunContext.from_config(cfg, data, store_, Path(cfg.paths.output_dir)), cfg

    return _ctx


@pytest.fixture
def model_calls(monkeypatch):
    """Every scoring model a protocol asks for: (indices it trains on, record_heldout)."""
    calls = []
    original = ModelService.get

    def spy(self, job):
        calls.append(job)
        return original(self, job)

    monkeypatch.setattr(ModelService, "get", spy)
    return calls


@pytest.mark.parametrize(
    "mode, scorer, per_sample", [("fold", "margin", 2), ("complement", "forgetting", 1)]
)
def test_heldout_scores_count_and_never_score_training_samples(
    ctx_for, model_calls, mode, scorer, per_sample
):
    ctx, cfg = ctx_for(f"scorer={scorer}", f"protocol.mode={mode}", "protocol.folds=3")
    labels = ctx.data.train_targets
    held = heldout_scores(ctx, build(cfg.scorer), labels, build(cfg.protocol))
    assert held.counts.min() == held.counts.max() == per_sample  # K-1 (fold) or 1 (complement)
    assert np.isfinite(held.scores).all() and len(held.records) == len(model_calls) == 3
    for call, rec in zip(model_calls, held.records, strict=True):
        np.testing.assert_array_equal(call.indices, rec.train)  # what it really trained on
        assert np.intersect1d(call.indices, rec.scored).size == 0
        assert call.record_heldout == (scorer == "forgetting")
    scored = np.concatenate([r.scored for r in held.records])
    np.testing.assert_array_equal(np.bincount(scored, minlength=labels.size), held.counts)
    assert ctx.ledger.models == 3


def test_normalised_repeats_average_per_model_scores(ctx_for):
    ctx, cfg = ctx_for("protocol.folds=2", "protocol.repeats=2", "protocol.normalize=zscore")
    labels = ctx.data.train_targets
    held = heldout_scores(ctx, Margin(), labels, build(cfg.protocol))
    assert (held.counts == 2).all() and {r.seed for r in held.records} == {0, 1}
    assert not np.array_equal(held.folds[0], held.folds[1])  # each repeat draws its own split
    total = np.zeros(labels.size)
    for rec in held.records:  # recompute from the cached models: z-score per model, then mean
        model = ctx.models.scoring_model(labels, indices=rec.train, seed=rec.seed)
        total[rec.scored] += normalize(Margin()(_inputs(labels, model, rec.scored)), "zscore")
    np.testing.assert_allclose(held.scores, total / 2, atol=1e-12)


def _inputs(labels, model, idx):
    from coreset_lab.scoring import ScoreInputs

    return ScoreInputs(labels=labels[idx], probs=model.probs[idx])


# --- the whole protocol ----------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["linear", "geometric"])
def test_incremental_protocol_reaches_the_budget_with_its_stages(ctx_for, model_calls, schedule):
    ctx, cfg = ctx_for(
        "protocol.folds=2", "protocol.stages=3", f"protocol.schedule={schedule}",
        "protocol.initial_fraction=0.3", "selector.prune_rate=0.6",
    )  # fmt: skip
    sel = build(cfg.protocol)(ctx, build(cfg.scorer), build(cfg.selector))
    sizes = stage_sizes(coreset_size(200, 0.6), 3, 0.3, schedule)
    facts = sel.extra["unseen"]
    assert sel.coreset.size == 80 and facts["stage_sizes"] == sizes
    assert facts["fold_models"] == 2 and facts["stage_models"] == 2
    stage_of = np.load(ctx.out_dir / "unseen.npz")["stage_of"]
    assert [int((stage_of == t).sum()) for t in (1, 2, 3)] == list(np.diff([0, *sizes]))
    np.testing.assert_array_equal(np.flatnonzero(stage_of > 0), sel.coreset)
    for t, call in zip((2, 3), model_calls[2:], strict=True):  # stage models: the coreset so far
        np.testing.assert_array_equal(call.indices, np.flatnonzero((stage_of > 0) & (stage_of < t)))


def test_rerun_builds_no_scoring_model(make_cfg, tmp_path):
    overrides = [
        *FAST,
        "protocol.folds=2",
        "protocol.stages=2",
        "scorer=aum",
        "selector.prune_rate=0.5",
    ]
    first = _run(make_cfg, *overrides)
    again = _run(make_cfg, *overrides)
    assert first["cost"]["models_built_this_run"] == 3  # 2 folds + 1 stage
    assert again["cost"]["models_built_this_run"] == 0
    assert not any(a.startswith("scoring_model/") for a in again["artifacts"]["built"])
    assert again["cost"]["models_trained"] == first["cost"]["models_trained"] == 3
    assert again["cost"]["samples_seen"] == first["cost"]["samples_seen"] > 0
    assert again["coreset_size"] == first["coreset_size"] == 100
    assert first["method"] == "unseen-s2-aum" and first["protocol"] == "unseen"


def test_parallel_workers_give_the_same_coreset(make_cfg, tmp_path):
    base = [*FAST, "protocol.folds=2", "protocol.stages=2", "selector.prune_rate=0.5"]
    out = tmp_path / "run"
    one = _run(make_cfg, *base, f"paths.store_dir={tmp_path}/store1")
    coreset_one, scores_one = np.load(out / "coreset.npy"), np.load(out / "scores.npy")
    two = _run(make_cfg, *base, "protocol.workers=2", f"paths.store_dir={tmp_path}/store2")
    np.testing.assert_array_equal(np.load(out / "coreset.npy"), coreset_one)
    np.testing.assert_allclose(np.load(out / "scores.npy"), scores_one, atol=1e-6)
    # the folds trained in the workers count as built by this run, and every model is counted
    assert two["cost"] == one["cost"] and two["cost"]["models_built_this_run"] == 3
    models = [a for a in two["artifacts"]["built"] if a.startswith("scoring_model/")]
    assert len(models) == 3 and not two["artifacts"]["reused"]


# --- command line ----------------------------------------------------------------------------


def test_cli_command_of_the_issue_writes_unseen_results(tmp_path, one_thread_env):
    out = tmp_path / "run"
    r = run_cli(
        "protocol=unseen", "scorer=margin", "protocol.folds=5", "protocol.stages=4",
        "selector.prune_rate=0.7", "trainer=debug", "logger=none", "model.kwargs.width=8",
        f"hydra.run.dir={out}", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    facts = result["unseen"]
    assert facts["folds"] == 5 and facts["mode"] == "fold" and facts["stages"] == 4
    assert facts["stage_sizes"][-1] == result["coreset_size"] == coreset_size(1347, 0.7)
    assert len(facts["stage_sizes"]) == 4 and facts["scores_per_sample"] == [4, 4]
    assert result["cost"]["models_trained"] == 5 + 3 == facts["fold_models"] + facts["stage_models"]
    assert (
        result["cost"]["samples_seen"] == facts["fold_samples_seen"] + facts["stage_samples_seen"]
    )
    assert result["method"] == "unseen-s4-margin"
    assert np.isfinite(np.load(out / "scores.npy")).all()


def test_cli_bad_folds_is_one_line_and_exit_2(tmp_path, one_thread_env):
    r = run_cli(
        "protocol=unseen", "protocol.folds=500", "trainer=debug", "logger=none", cwd=tmp_path
    )
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert any("protocol.folds" in line for line in errors) and "Traceback" not in r.stderr


def test_score_stability_script_writes_png_and_json(tmp_path, one_thread_env):
    out = tmp_path / "diag"
    r = subprocess.run(
        [
            sys.executable, str(ROOT / "scripts" / "score_stability.py"),
            "scorer=margin", "dataset=digits", "trainer=debug", "--out", str(out),
            "dataset.train_subset=200", "model.kwargs.width=8", "protocol.folds=2",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "stability.json").read_text())
    for kind in ("fitting", "unseen"):
        assert -1.0 <= report[kind]["rank_pearson"] <= 1.0
        assert set(report[kind]["per_seed"]) == {"0", "1"}
    assert report["seeds"] == [0, 1] and report["cost"]["models_trained"] == 2 + 2 * 2
    for png in ("stability_hist.png", "stability_ranks.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scores = np.load(out / "stability_scores.npz")
    assert scores["unseen_seed0"].shape == (200,)
