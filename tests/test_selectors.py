"""Selectors: exact budgets, which end is kept, class balance, CCS strata, double-end window."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from coreset_lab.errors import UserError
from coreset_lab.run.config import CONF_DIR
from coreset_lab.selection import (
    CCS,
    SELECTORS,
    DoubleEnd,
    Moderate,
    RandomSelector,
    TopK,
    build_selector,
    coreset_size,
)
from coreset_lab.selection.ccs import allocate_strata, stratum_of
from coreset_lab.selection.topk import class_budgets

CONF = Path(CONF_DIR) / "selector"
RATES = [0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
SIZES = [1, 2, 3, 7, 10, 33, 100, 1000]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def expected_size(n: int, p: float) -> int:
    return max(1, n - math.floor(Fraction(str(p)) * n))  # exact decimal arithmetic


def every_selector(p: float) -> list:
    return [
        RandomSelector(p),
        TopK(p, keep="hard"),
        TopK(p, keep="easy"),
        CCS(p, beta=p / 2, strata=5),
        DoubleEnd(p, beta=p / 3),
        Moderate(p),
    ]


# --- budget ------------------------------------------------------------------------------------


def test_coreset_size_examples():
    assert coreset_size(10, 0.3) == 7  # 0.3 * 10 is 2.9999999999999996 in binary
    assert coreset_size(50_000, 0.9) == 5_000
    assert coreset_size(1_281_167, 0.7) == 1_281_167 - 896_816
    assert coreset_size(100, 0.0) == 100
    assert coreset_size(3, 0.9) == 1
    assert coreset_size(1, 0.5) == 1
    assert coreset_size(10, 0.99) == 1


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("p", RATES)
def test_coreset_size_and_selection_sizes_exact(n, p):
    k = coreset_size(n, p)
    assert k == expected_size(n, p)
    scores = rng(n).normal(size=n)
    for sel in every_selector(p):
        idx = sel(scores, None, rng(1))
        assert idx.dtype == np.int64 and idx.shape == (k,), sel
        assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < n, sel


def test_selections_with_ties_and_constant_scores():
    for scores in (np.zeros(50), np.repeat([1.0, 2.0], 25)):
        for sel in every_selector(0.5):
            idx = sel(scores, None, rng())
            assert idx.shape == (25,) and len(np.unique(idx)) == 25


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "abc", "0.5", True, False, None, float("nan")])
def test_prune_rate_validation(bad):
    with pytest.raises(UserError, match="selector.prune_rate"):
        coreset_size(10, bad)
    for cls in SELECTORS.values():
        with pytest.raises(UserError, match="selector.prune_rate"):
            cls(prune_rate=bad)


def test_prune_rate_accepts_numpy_and_int():
    assert coreset_size(10, np.float32(0.5)) == 5
    assert TopK(0).prune_rate == 0.0


# --- random ------------------------------------------------------------------------------------


def test_random_selector_seeded_and_ignores_scores():
    scores = np.full(100, np.nan)  # unused: NaN must not matter
    a = RandomSelector(0.5)(scores, None, rng(7))
    b = RandomSelector(0.5)(scores, None, rng(7))
    c = RandomSelector(0.5)(scores, None, rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# --- top-k -------------------------------------------------------------------------------------


def test_topk_hard_keeps_highest_easy_keeps_lowest():
    scores = rng().permutation(100).astype(float)
    hard = TopK(0.8, keep="hard")(scores, None, rng())
    easy = TopK(0.8, keep="easy")(scores, None, rng())
    np.testing.assert_array_equal(np.sort(scores[hard]), np.arange(80, 100))
    np.testing.assert_array_equal(np.sort(scores[easy]), np.arange(0, 20))


def test_topk_ties_broken_by_index():
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.0, 2.0])
    np.testing.assert_array_equal(TopK(0.5, keep="hard")(scores, None, rng()), [1, 2, 3])
    np.testing.assert_array_equal(TopK(0.5, keep="easy")(scores, None, rng()), [0, 1, 4])


def test_topk_rejects_nan_scores():
    with pytest.raises(ValueError, match="NaN"):
        TopK(0.5)(np.array([0.1, np.nan, 0.3, 0.2]), None, rng())


def test_class_budgets_hand_computed():
    # 1 each, then 47 shared over spare sizes 49, 29, 19 (of 97): 23.74, 14.05, 9.21 -> 23, 14, 9
    # plus the one left over to the largest remainder (class 0): exactly 50/30/20 proportional.
    np.testing.assert_array_equal(class_budgets(np.array([50, 30, 20]), 50), [25, 15, 10])
    np.testing.assert_array_equal(class_budgets(np.array([10, 10, 10]), 15), [5, 5, 5])
    # A tiny class still keeps one sample; 7 * 96 / 97 = 6.93 -> 6, then +1 by remainder.
    np.testing.assert_array_equal(class_budgets(np.array([97, 2, 1]), 10), [8, 1, 1])
    np.testing.assert_array_equal(class_budgets(np.array([4, 3]), 7), [4, 3])


def test_class_budgets_random_properties():
    g = rng(3)
    for _ in range(500):
        counts = g.integers(1, 40, size=g.integers(1, 8))
        k = int(g.integers(len(counts), counts.sum() + 1))
        b = class_budgets(counts, k)
        assert b.sum() == k and np.all(b >= 1) and np.all(b <= counts)
        n, c = counts.sum(), len(counts)
        share = 1 + (k - c) * (counts - 1) / max(n - c, 1)
        assert np.all(np.abs(b - share) < 1)
        bigger = counts[:, None] > counts[None, :]
        assert np.all(b[:, None] >= b[None, :], where=bigger)  # a bigger class never gets fewer


def test_topk_class_balanced_counts_and_within_class_order():
    labels = rng(6).permutation(np.repeat([3, 7, 9], [50, 30, 20]))  # interleaved, gaps in ids
    scores = np.round(rng(5).normal(size=100), 1)  # with ties
    for keep in ("hard", "easy"):
        idx = TopK(0.5, keep=keep, class_balanced=True)(scores, labels, rng())
        np.testing.assert_array_equal(np.unique(labels[idx], return_counts=True)[1], [25, 15, 10])
        for c, b in zip([3, 7, 9], [25, 15, 10], strict=True):
            members = np.flatnonzero(labels == c)
            sign = -1 if keep == "hard" else 1
            best = np.sort(members[np.argsort(sign * scores[members], kind="stable")[:b]])
            np.testing.assert_array_equal(idx[labels[idx] == c], best)


def test_topk_class_balanced_errors():
    labels = np.arange(10) % 5
    with pytest.raises(UserError, match="selector.prune_rate"):
        TopK(0.9, class_balanced=True)(np.zeros(10), labels, rng())  # budget 1 < 5 classes
    with pytest.raises(ValueError, match="labels"):
        TopK(0.5, class_balanced=True)(np.zeros(10), None, rng())
    with pytest.raises(UserError, match="selector.class_balanced"):
        TopK(0.5, class_balanced="yes")
    with pytest.raises(UserError, match="selector.keep"):
        TopK(0.5, keep="hardest")


# --- CCS ---------------------------------------------------------------------------------------


def test_allocate_strata_hand_computed():
    # Non-empty strata by size: 1 (#0), 3 (#2), 10 (#1). Shares: min(1, 9//3), min(3, 8//2), 5.
    np.testing.assert_array_equal(allocate_strata(np.array([1, 10, 3, 0]), 9), [1, 5, 3, 0])
    np.testing.assert_array_equal(allocate_strata(np.array([5, 6, 6]), 15), [5, 5, 5])
    np.testing.assert_array_equal(allocate_strata(np.array([2, 2, 100]), 10), [2, 2, 6])


def test_allocate_strata_exact_and_level():
    g = rng(11)
    for _ in range(2000):
        sizes = g.integers(0, 30, size=g.integers(1, 12))
        budget = int(g.integers(0, sizes.sum() + 1))
        take = allocate_strata(sizes, budget)
        assert take.sum() == budget and np.all(take <= sizes) and np.all(take >= 0)
        # Water level: strata not taken whole get L or L+1; the ones taken whole are <= L+1.
        capped = take < sizes
        if capped.any():
            level = take[capped].min()
            assert np.all(take[capped] <= level + 1)
            assert np.all(sizes[~capped] <= level + 1)


def test_stratum_of_includes_max_even_for_negative_scores():
    v = np.array([-5.0, -4.0, -3.0, -2.0, -1.0])
    np.testing.assert_array_equal(stratum_of(v, 2), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(stratum_of(np.ones(4), 50), [0, 0, 0, 0])


def test_ccs_keeps_everything_at_zero_prune_rate_with_negative_scores():
    scores = -rng().random(200) - 1.0  # like negated AUM: all negative
    np.testing.assert_array_equal(CCS(0.0, strata=50)(scores, None, rng()), np.arange(200))


def test_ccs_is_deterministic_given_rng():
    scores = rng(2).normal(size=1000)
    a = CCS(0.7, beta=0.1)(scores, None, rng(5))
    b = CCS(0.7, beta=0.1)(scores, None, rng(5))
    c = CCS(0.7, beta=0.1)(scores, None, rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ccs_beta_cut_removes_exactly_the_hardest():
    scores = rng(4).permutation(1000).astype(float)
    hardest = np.flatnonzero(scores >= 1000 - 200)  # floor(0.2 * 1000) highest
    idx = CCS(0.5, beta=0.2)(scores, None, rng())
    assert np.intersect1d(idx, hardest).size == 0
    # beta = prune_rate: the pool is exactly the budget, i.e. everything but the hardest.
    idx = CCS(0.2, beta=0.2)(scores, None, rng())
    np.testing.assert_array_equal(idx, np.setdiff1d(np.arange(1000), hardest))


def test_ccs_covers_both_modes_of_a_bimodal_distribution():
    g = rng(9)
    scores = np.concatenate([g.normal(0, 0.1, 900), g.normal(10, 0.1, 100)])
    high = np.arange(900, 1000)
    idx = CCS(0.9, strata=50)(scores, None, rng())  # budget 100
    n_high = np.intersect1d(idx, high).size
    assert idx.size == 100 and 30 <= n_high <= 70
    # For contrast: the easy end alone never reaches the high mode.
    assert np.intersect1d(TopK(0.9, keep="easy")(scores, None, rng()), high).size == 0


def test_ccs_validation():
    with pytest.raises(UserError, match="selector.beta"):
        CCS(0.5, beta=0.6)
    with pytest.raises(UserError, match="selector.beta"):
        CCS(0.5, beta=-0.1)
    for bad in (0, -3, 2.5, "50", True):
        with pytest.raises(UserError, match="selector.strata"):
            CCS(0.5, strata=bad)


# --- CCS: β per prune rate (selector.beta_by_rate) ---------------------------------------------

TABLE = {0.5: 0.0, 0.7: 0.1, 0.8: 0.2, 0.9: 0.3}


@pytest.mark.parametrize("rate", sorted(TABLE))
def test_ccs_beta_by_rate_uses_the_entry_of_the_run_rate(rate):
    scores = rng(5).normal(size=500)
    sel = CCS(rate, beta=0.05, beta_by_rate=TABLE)  # beta is ignored when the table is set
    assert sel.beta == TABLE[rate]
    same = CCS(rate, beta=TABLE[rate])
    np.testing.assert_array_equal(sel(scores, None, rng(2)), same(scores, None, rng(2)))
    # the floor(beta * N) hardest are dropped, exactly as with the fixed beta
    dropped = np.argsort(-scores, kind="stable")[: math.floor(TABLE[rate] * 500 + 1e-9)]
    assert np.intersect1d(sel(scores, None, rng(2)), dropped).size == 0


def test_ccs_beta_by_rate_accepts_config_and_string_keys():
    table = OmegaConf.create({"0.9": 0.3, "0.5": 0.0})  # as a command-line dict may arrive
    assert CCS(0.9, beta_by_rate=table).beta == 0.3
    assert CCS(0.5, beta_by_rate=OmegaConf.create({0.5: 0.0})).beta == 0.0
    assert CCS(0.3 * 3, beta_by_rate={0.9: 0.3}).beta == 0.3  # 0.8999999999999999 is 0.9


def test_ccs_beta_by_rate_missing_rate_is_refused_naming_the_rates():
    with pytest.raises(UserError) as err:
        CCS(0.6, beta_by_rate=TABLE)
    msg = str(err.value)
    assert "selector.beta_by_rate has no entry for selector.prune_rate=0.6" in msg
    assert "0.5, 0.7, 0.8, 0.9" in msg


@pytest.mark.parametrize(
    "table,match",
    [
        ({0.5: 0.6}, r"beta_by_rate\[0.5\]=0.6: beta must be in \[0, 0.5\]"),  # β > its rate
        ({0.9: 0.3, 0.5: 0.7}, r"beta_by_rate\[0.5\]"),  # refused even for another rate
        ({0.9: -0.1}, "beta_by_rate"),
        ({1.0: 0.3}, "beta_by_rate key"),
        ({"ninety": 0.3}, "is not a prune rate"),
        ({0.9: "0.3"}, "beta_by_rate"),
        ({}, "non-empty mapping"),
        ([0.3], "non-empty mapping"),
    ],
)
def test_ccs_beta_by_rate_validation(table, match):
    with pytest.raises(UserError, match=match):
        CCS(0.9, beta_by_rate=table)


def test_ccs_fixed_beta_above_rate_still_refused():
    with pytest.raises(UserError, match="selector.beta"):
        CCS(0.5, beta=0.6, beta_by_rate=None)


@pytest.mark.parametrize(
    "experiment,rate,beta",
    [
        ("elfs_cifar10", 0.9, 0.3),  # CCS README, CIFAR-10 at 90%
        ("elfs_imagenet", 0.8, 0.2),  # CCS README, ImageNet at 80%
        ("elfs_imagenet", 0.9, 0.3),  # CCS README, ImageNet at 90%
        ("unseen_imagenet_baselines", 0.9, 0.3),
        ("unseen_cifar10_baselines", 0.9, 0.3),
    ],
)
def test_paper_experiments_give_ccs_the_readme_beta(make_cfg, experiment, rate, beta):
    from coreset_lab.run.checks import check_config

    cfg, _ = make_cfg(f"experiment={experiment}", "method=ccs", f"selector.prune_rate={rate}")
    assert check_config(cfg).selector.beta == beta


@pytest.mark.parametrize("experiment", ["elfs_cifar10", "unseen_cifar100_baselines"])
def test_every_swept_rate_has_a_ccs_beta_and_other_selectors_ignore_the_table(make_cfg, experiment):
    from hydra.core.hydra_config import HydraConfig

    from coreset_lab.run.checks import check_config

    make_cfg(f"experiment={experiment}")
    params = HydraConfig.get().sweeper.params
    rates = [float(r) for r in str(params["selector.prune_rate"]).split(",")]
    for method in str(params["method"]).split(","):
        for rate in rates:
            cfg, _ = make_cfg(
                f"experiment={experiment}", f"method={method}", f"selector.prune_rate={rate}"
            )
            sel = check_config(cfg).selector
            if isinstance(sel, CCS):
                assert sel.beta_by_rate is not None and sel.beta <= rate
            else:
                assert "beta_by_rate" not in cfg.selector


# --- double-end --------------------------------------------------------------------------------


@pytest.mark.parametrize("p,beta", [(0.6, 0.3), (0.9, 0.4), (0.5, 0.5), (0.5, 0.0), (0.3, 0.1)])
def test_double_end_keeps_the_window(p, beta):
    n = 100
    scores = rng(1).permutation(n).astype(float)
    hard_first = np.argsort(-scores)
    start, k = math.floor(Fraction(str(beta)) * n), coreset_size(n, p)
    idx = DoubleEnd(p, beta=beta)(scores, None, rng())
    np.testing.assert_array_equal(idx, np.sort(hard_first[start : start + k]))
    assert idx.size == k  # beta = p (the ELFS [m:-0] slice) is full-size, not empty


def test_double_end_zero_beta_is_topk_hard():
    scores = rng(3).normal(size=77)
    np.testing.assert_array_equal(
        DoubleEnd(0.7, beta=0.0)(scores, None, rng()), TopK(0.7)(scores, None, rng())
    )


def test_double_end_validation():
    with pytest.raises(UserError, match="selector.beta"):
        DoubleEnd(0.5, beta=0.6)  # beta + (1 - p) > 1
    with pytest.raises(UserError, match="selector.beta"):
        DoubleEnd(0.5, beta="0.1")


# --- registry and configs ----------------------------------------------------------------------


def test_build_selector():
    assert isinstance(build_selector("ccs", prune_rate=0.9, beta=0.3), CCS)
    with pytest.raises(UserError, match="unknown selector 'd3'; known: .*topk"):
        build_selector("d3")
    with pytest.raises(UserError, match="topk"):
        build_selector("topk", prune=0.5)


def test_selector_configs_instantiate():
    files = sorted(CONF.glob("*.yaml"))
    assert {f.stem for f in files} == set(SELECTORS)
    for f in files:
        cfg = OmegaConf.load(f)
        assert cfg.prune_rate == 0.5
        sel = instantiate(cfg)
        assert type(sel) is SELECTORS[f.stem]
        extra = {"embeddings": rng().normal(size=(20, 4))} if "embeddings" in sel.needs else {}
        assert sel(rng().normal(size=20), np.arange(20) % 2, rng(), **extra).shape == (10,)
    sel = instantiate(OmegaConf.load(CONF / "topk.yaml"))
    assert sel.keep == "hard" and sel.class_balanced is False
