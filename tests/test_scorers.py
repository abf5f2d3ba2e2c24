"""Scorers on hand-made toy inputs: numbers computed by hand, and higher = harder everywhere."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from coreset_lab.dynamics import Dynamics
from coreset_lab.errors import UserError
from coreset_lab.run.config import CONF_DIR
from coreset_lab.scoring import (
    AUM,
    EL2N,
    SCORERS,
    TDDS,
    Entropy,
    Forgetting,
    LeastConfidence,
    Margin,
    RandomScore,
    ScoreInputs,
    build_scorer,
)

CONF = Path(CONF_DIR) / "scorer"


def dyn_from_probs(probs: list, labels: list) -> tuple[Dynamics, np.ndarray]:
    """Dynamics whose softmax is exactly `probs` [E, N, C] (logits = log p)."""
    y = np.asarray(labels, dtype=np.int64)
    return Dynamics.from_logits(np.log(np.asarray(probs, dtype=np.float64)), y), y


def correctness_dyn(rows: list[list[int]]) -> tuple[Dynamics, np.ndarray]:
    """Dynamics with label 0 everywhere and correct[t, i] = rows[i][t]."""
    good, bad = [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]
    logits = np.array([[good if c else bad for c in row] for row in rows]).transpose(1, 0, 2)
    y = np.zeros(len(rows), dtype=np.int64)
    return Dynamics.from_logits(logits, y), y


def softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --- random ------------------------------------------------------------------------------------


def test_random_score_is_seeded_uniform():
    y = np.zeros(1000, dtype=np.int64)
    a = RandomScore()(ScoreInputs(labels=y, seed=3))
    b = RandomScore()(ScoreInputs(labels=y, seed=3))
    c = RandomScore()(ScoreInputs(labels=y, seed=4))
    assert a.dtype == np.float64 and a.shape == (1000,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() < 1.0 and abs(a.mean() - 0.5) < 0.05


# --- AUM ---------------------------------------------------------------------------------------

# Sample 0 (easy): margins 0.40-0.35 = 0.05 and 0.6-0.3 = 0.3, AUM 0.35.
# Sample 1 (hard, the model prefers class 1): margins 0.1-0.8 = -0.7 and 0.2-0.7 = -0.5, AUM -1.2.
AUM_PROBS = [
    [[0.40, 0.35, 0.25], [0.1, 0.8, 0.1]],
    [[0.60, 0.30, 0.10], [0.2, 0.7, 0.1]],
]


def test_aum_hand_computed():
    dyn, y = dyn_from_probs(AUM_PROBS, [0, 0])
    s = AUM()(ScoreInputs(labels=y, dynamics=dyn))
    assert s.dtype == np.float64
    np.testing.assert_allclose(s, [-0.35, 1.2], atol=1e-6)
    assert s[1] > s[0]


def test_aum_sums_only_seen_epochs():
    dyn, y = dyn_from_probs(AUM_PROBS + [[[0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]], [0, 0])
    dyn.seen[1, 0] = False  # sample 0 missing at epoch 1: epochs 0 and 2 count
    dyn.p_label[1, 0] = np.nan  # unseen entries hold fill values; they must not leak in
    dyn.seen[:, 1] = False  # sample 1 never recorded
    s = AUM()(ScoreInputs(labels=y, dynamics=dyn))
    np.testing.assert_allclose(s[0], -(0.05 + 0.85), atol=1e-6)
    assert np.isnan(s[1])


# --- forgetting --------------------------------------------------------------------------------

FORGET_ROWS = [
    [1, 0, 1, 0],  # learned then forgotten twice -> 2
    [0, 0, 0, 0],  # never learned -> E (=4) under "max", 0 under "zero"
    [1, 1, 1, 1],  # never forgotten -> 0
    [0, 1, 1, 0],  # one forgetting event -> 1
    [1, 0, 0, 0],  # correct at epoch 0 counts as learning (prior state: not learned) -> 1
    [0, 1, 0, 1],  # epoch 0 incorrect is no event -> 1
]


def test_forgetting_counts_transitions():
    dyn, y = correctness_dyn(FORGET_ROWS)
    s = Forgetting(never_learned="max")(ScoreInputs(labels=y, dynamics=dyn))
    np.testing.assert_array_equal(s, [2, 4, 0, 1, 1, 1])
    assert s.dtype == np.float64
    assert s[1] > s.max(initial=0, where=np.arange(6) != 1)  # never learned ranks hardest


def test_forgetting_never_learned_zero_is_ccs_convention():
    dyn, y = correctness_dyn(FORGET_ROWS)
    s = Forgetting(never_learned="zero")(ScoreInputs(labels=y, dynamics=dyn))
    np.testing.assert_array_equal(s, [2, 0, 0, 1, 1, 1])


def ccs_forgetting(correct: np.ndarray) -> np.ndarray:
    """The CCS/ELFS `training_dynamics_metrics` rule, transcribed as a loop: per sample,
    `last_correctness` starts at 0 and every 1 -> 0 step is one forgetting event."""
    out = np.zeros(correct.shape[1])
    for i in range(correct.shape[1]):
        last = 0
        for t in range(correct.shape[0]):
            out[i] += last == 1 and correct[t, i] == 0
            last = correct[t, i]
    return out


def test_forgetting_default_is_the_ccs_code():
    """Default never_learned=zero: never-learned samples score 0, as in the CCS/ELFS code."""
    assert Forgetting().never_learned == "zero"
    assert instantiate(OmegaConf.load(CONF / "forgetting.yaml")).never_learned == "zero"
    r = np.random.default_rng(0)
    rows = (r.random((30, 12)) < 0.6).astype(int)
    rows[:5] = 0  # five never-learned samples
    dyn, y = correctness_dyn(rows.tolist())
    s = Forgetting()(ScoreInputs(labels=y, dynamics=dyn))
    np.testing.assert_array_equal(s, ccs_forgetting(dyn.correct.astype(int)))
    assert np.all(s[:5] == 0)


def test_forgetting_default_keeps_never_learned_out_of_a_hard_topk():
    """The failure the default fixed: with `max`, never-learned samples fill a hard top-k."""
    from coreset_lab.selection import TopK

    dyn, y = correctness_dyn(FORGET_ROWS)
    zero = Forgetting()(ScoreInputs(labels=y, dynamics=dyn))
    top = Forgetting(never_learned="max")(ScoreInputs(labels=y, dynamics=dyn))
    keep = TopK(0.5)  # 3 of 6; samples 3, 4 and 5 tie at one forgetting event
    kept_zero = set(keep(zero, None, np.random.default_rng(0)).tolist())
    kept_max = set(keep(top, None, np.random.default_rng(0)).tolist())
    assert len(kept_zero) == len(kept_max) == 3
    assert kept_zero - {3, 4, 5} == {0}  # sample 1 (never learned) stays out
    assert kept_max - {3, 4, 5} == {0, 1}  # under "max" it is among the hardest


def test_forgetting_skips_unseen_epochs():
    dyn, y = correctness_dyn([[1, 0, 1, 1], [1, 1, 0, 1], [0, 1, 0, 0]])
    dyn.seen[1, 0] = False  # the 0 at epoch 1 was never recorded: 1, -, 1, 1 -> no event
    dyn.seen[1, 1] = False  # 1, -, 0, 1 -> the drop is between epochs 0 and 2 -> 1 event
    dyn.seen[1, 2] = False  # 0, -, 0, 0: never correct where recorded -> E = 4
    s = Forgetting(never_learned="max")(ScoreInputs(labels=y, dynamics=dyn))
    np.testing.assert_array_equal(s, [0, 1, 4])


def test_forgetting_validates_option():
    with pytest.raises(UserError, match="scorer.never_learned"):
        Forgetting(never_learned="infinite")


# --- EL2N --------------------------------------------------------------------------------------


def test_el2n_hand_computed():
    # easy: ||(0.9, 0.1) - (1, 0)|| = sqrt(0.02); hard: ||(0.4, 0.6) - (1, 0)|| = sqrt(0.72)
    dyn, y = dyn_from_probs([[[0.9, 0.1], [0.4, 0.6]]], [0, 0])
    s = EL2N(epochs=1)(ScoreInputs(labels=y, dynamics=dyn))
    np.testing.assert_allclose(s, [math.sqrt(0.02), math.sqrt(0.72)], rtol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 4, 10])
def test_el2n_matches_direct_softmax_computation(k):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=(4, 6, 3))
    y = rng.integers(0, 3, size=6)
    dyn = Dynamics.from_logits(logits, y)
    p = softmax(logits)
    err = p - np.eye(3)[y][None]
    expected = np.linalg.norm(err, axis=-1)[: min(k, 4)].mean(axis=0)
    s = EL2N(epochs=k)(ScoreInputs(labels=y, dynamics=dyn))
    np.testing.assert_allclose(s, expected, rtol=1e-5)


def test_el2n_confident_sample_is_zero_not_nan():
    logits = np.array([[[30.0, -30.0, -30.0]]])
    dyn = Dynamics.from_logits(logits, np.array([0]))
    s = EL2N()(ScoreInputs(labels=np.array([0]), dynamics=dyn))
    assert np.isfinite(s[0]) and 0.0 <= s[0] < 1e-3


def test_el2n_validates_epochs():
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(UserError, match="scorer.epochs"):
            EL2N(epochs=bad)


# --- uncertainty -------------------------------------------------------------------------------

EASY_HARD = np.array([[0.9, 0.1], [0.4, 0.6]], dtype=np.float32)


def test_uncertainty_hand_computed_two_classes():
    inputs = ScoreInputs(labels=np.zeros(2, dtype=np.int64), probs=EASY_HARD)
    ent = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)), -(0.4 * math.log(0.4) + 0.6 * math.log(0.6))
    np.testing.assert_allclose(Entropy()(inputs), ent, rtol=1e-6)
    np.testing.assert_allclose(Margin()(inputs), [1 - 0.8, 1 - 0.2], rtol=1e-6)
    np.testing.assert_allclose(LeastConfidence()(inputs), [0.1, 0.4], rtol=1e-6)


def test_uncertainty_three_classes_and_zeros():
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [1.0, 0.0, 0.0]], dtype=np.float32)
    inputs = ScoreInputs(labels=np.zeros(3, dtype=np.int64), probs=probs)
    np.testing.assert_allclose(Margin()(inputs), [0.5, 0.95, 0.0], atol=1e-6)
    np.testing.assert_allclose(LeastConfidence()(inputs), [0.3, 0.6, 0.0], atol=1e-6)
    ent = Entropy()(inputs)
    assert ent[2] == 0.0 and np.all(np.isfinite(ent))
    assert ent[1] > ent[0] > ent[2]


def test_uncertainty_needs_probs():
    with pytest.raises(ValueError, match="probabilities"):
        Entropy()(ScoreInputs(labels=np.zeros(2, dtype=np.int64)))


# --- TDDS --------------------------------------------------------------------------------------


def tdds_loop(logits: np.ndarray, T: int, J: int, beta: float) -> np.ndarray:
    """Straightforward per-sample transcription of the TDDS formulas, for comparison."""
    out = np.zeros(logits.shape[1])
    for i in range(logits.shape[1]):
        p = [softmax(logits[t, i]) for t in range(T)]
        d = []
        for t in range(T - 1):
            terms = [
                abs(p[t + 1][c] * (math.log(p[t + 1][c] + 1e-8) - math.log(p[t][c] + 1e-8)))
                for c in range(logits.shape[2])
            ]
            d.append(sum(terms))
        for k in range(T - J + 1):
            w = d[k : k + J - 1]
            mu = sum(w) / (J - 1)
            v = math.sqrt(sum((x - mu) ** 2 for x in w))
            out[i] += v * beta * (1 - beta) ** (T - J - k)
    return out


@pytest.mark.parametrize("T,J,beta", [(6, 3, 0.9), (6, 6, 0.9), (5, 2, 0.5), (6, 4, 1.0)])
def test_tdds_matches_loop_implementation(T, J, beta):
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, size=(7, 5, 4))
    y = rng.integers(0, 4, size=5)
    dyn = Dynamics.from_logits(logits, y)
    s = TDDS(trajectory_len=T, window=J, decay=beta)(ScoreInputs(labels=y, dynamics=dyn))
    # The scorer reads the float16 logits the recorder stores: compare on the same values.
    np.testing.assert_allclose(s, tdds_loop(dyn.logits, T, J, beta), rtol=1e-9, atol=1e-12)


def test_tdds_hand_computed_and_constant_trajectory():
    # Sample 0 jumps once: [.5,.5] [.5,.5] [q,1-q] [q,1-q] with q = sigmoid(2), so d = (0, d1, 0).
    # T=4, J=3, beta=0.5: windows (d0,d1), (d1,d2), each of deviation norm d1/sqrt(2), weighted
    # 0.5*0.5 and 0.5. Sample 1 never changes: every d_t is 0, so its score is 0.
    z = np.zeros((4, 2, 2))
    z[2:, 0, 0] = 2.0
    z[:, 1, :] = [1.0, -1.0]
    dyn = Dynamics.from_logits(z, np.array([0, 0]))
    q = 1 / (1 + math.exp(-2.0))
    d1 = q * abs(math.log(q / 0.5)) + (1 - q) * abs(math.log((1 - q) / 0.5))
    s = TDDS(trajectory_len=4, window=3, decay=0.5)(
        ScoreInputs(labels=np.zeros(2, np.int64), dynamics=dyn)
    )
    np.testing.assert_allclose(s, [0.75 * d1 / math.sqrt(2), 0.0], rtol=1e-6, atol=1e-12)
    assert s[0] > s[1]


def test_tdds_unseen_epochs_drop_their_differences():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, size=(4, 3, 3))
    y = np.zeros(3, dtype=np.int64)
    dyn = Dynamics.from_logits(logits, y)
    dyn.seen[0, 1] = False  # sample 1: d_0 missing -> window 0 has one difference (norm 0)
    dyn.seen[:, 2] = False  # sample 2 never recorded
    s = TDDS(trajectory_len=4, window=3, decay=0.5)(ScoreInputs(labels=y, dynamics=dyn))
    full = tdds_loop(dyn.logits, 4, 3, 0.5)
    only_last = tdds_loop(dyn.logits[1:], 3, 3, 0.5)  # window (d1, d2) alone, weight 0.5
    np.testing.assert_allclose(s[:2], [full[0], only_last[1]], rtol=1e-9)
    assert np.isnan(s[2])


def test_tdds_validation():
    with pytest.raises(UserError, match="scorer.window"):
        TDDS(trajectory_len=5, window=6)
    with pytest.raises(UserError, match="scorer.window"):
        TDDS(trajectory_len=5, window=1)
    with pytest.raises(UserError, match="scorer.decay"):
        TDDS(decay=0.0)
    with pytest.raises(UserError, match="scorer.decay"):
        TDDS(decay=1.5)
    with pytest.raises(UserError, match="scorer.trajectory_len"):
        TDDS(trajectory_len="30")
    dyn = Dynamics.from_logits(np.zeros((4, 2, 3)), np.zeros(2, dtype=np.int64))
    with pytest.raises(UserError, match="scorer.trajectory_len"):
        TDDS(trajectory_len=5, window=3)(ScoreInputs(labels=np.zeros(2, np.int64), dynamics=dyn))
    dyn.logits = None
    with pytest.raises(ValueError, match="logits"):
        TDDS(trajectory_len=4, window=3)(ScoreInputs(labels=np.zeros(2, np.int64), dynamics=dyn))


# --- every scorer: orientation, registry, configs ----------------------------------------------


def easy_hard_inputs() -> ScoreInputs:
    """Sample 0 is easy in every sense, sample 1 hard (low margin, forgotten, volatile)."""
    easy = [[3.0, 0.0, 0.0]] * 6
    hard = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.9, 0.0], [0.0, 1.2, 0.0]] + [
        [0.5, 0.4, 0.3]
    ] * 2
    logits = np.array([easy, hard]).transpose(1, 0, 2)
    y = np.zeros(2, dtype=np.int64)
    return ScoreInputs(
        labels=y,
        dynamics=Dynamics.from_logits(logits, y),
        probs=np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25]], dtype=np.float32),
        feature_sqnorm=np.ones(2, dtype=np.float32),  # equal features: the gradient decides
    )


# Embedding-based scorers rank by geometry, not by these logits; they have their own tests.
@pytest.mark.parametrize(
    "name", [n for n in SCORERS if n != "random" and "embeddings" not in SCORERS[n].needs]
)
def test_every_scorer_ranks_the_hard_sample_higher(name):
    kw = {"tdds": {"trajectory_len": 6, "window": 3}, "dynunc": {"window": 3}}.get(name, {})
    s = build_scorer(name, **kw)(easy_hard_inputs())
    assert s.dtype == np.float64 and s.shape == (2,)
    assert s[1] > s[0], (name, s)


def test_needs_are_declared():
    for cls in SCORERS.values():
        assert cls.needs <= {"dynamics", "logits", "probs", "features", "embeddings"}
    assert TDDS.needs >= {"logits"}
    assert Entropy.needs == {"probs"} and RandomScore.needs == frozenset()


def test_build_scorer_errors():
    with pytest.raises(UserError, match="unknown scorer 'no_such'; known: .*el2n"):
        build_scorer("no_such")
    with pytest.raises(UserError, match="el2n"):
        build_scorer("el2n", epoch=3)


def test_scorer_configs_instantiate():
    files = sorted(CONF.glob("*.yaml"))
    assert {f.stem for f in files} == set(SCORERS)
    for f in files:
        scorer = instantiate(OmegaConf.load(f))
        assert type(scorer) is SCORERS[f.stem]


def test_bad_config_value_surfaces_user_error():
    cfg = OmegaConf.load(CONF / "el2n.yaml")
    cfg.epochs = 0
    with pytest.raises(InstantiationException) as info:
        instantiate(cfg)
    # Hydra wraps exceptions from the target; the runner unwraps __cause__ to print it.
    assert isinstance(info.value.__cause__, UserError)
