"""The fast engine computes what the Lightning engine computes, for one model or a vmapped group."""

import dataclasses

import numpy as np
import pytest
import torch

from coreset_lab.data import FileImageSet, build_dataset
from coreset_lab.errors import UserError
from coreset_lab.models import build_model
from coreset_lab.training import steppers
from coreset_lab.training.budget import Budget
from coreset_lab.training.fast import CHECKPOINT, Plan, train_models, use_fast_engine
from coreset_lab.training.fit import train_classifier
from coreset_lab.training.predict import accuracy, predict_probs
from coreset_lab.training.recipe import Recipe

STATS = ("p_label", "p_other", "loss", "p_sqnorm")


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits")  # on-device augmentation: random translate by 1 px


def _cnn(seed: int, width: int = 8):
    torch.manual_seed(seed)
    return build_model("small_cnn", 10, 1, 8, width=width)


def _recipe(engine: str, **kw) -> Recipe:
    return Recipe(batch_size=64, lr=0.05, accelerator="cpu", progress=False, engine=engine, **kw)


def _assert_same_dynamics(a, b, atol):
    np.testing.assert_array_equal(a.seen, b.seen)
    for k in STATS:
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), atol=atol, equal_nan=True)


def test_fast_engine_reproduces_the_lightning_engine(digits):
    """Same order, same augmentation draws, same optimiser: the same numbers on the CPU."""
    subset = np.arange(0, 1000)
    fits = {
        engine: train_classifier(
            _cnn(0),
            digits,
            digits.train_targets,
            _recipe(engine, warmup_fraction=0.2),
            Budget(epochs=3),
            indices=subset,
            seed=3,
            record=True,
            record_logits=True,
            record_heldout=True,
        )
        for engine in ("lightning", "fast")
    }
    light, fast = fits["lightning"], fits["fast"]
    assert (fast.steps, fast.samples_seen) == (light.steps, light.samples_seen) == (48, 3000)
    _assert_same_dynamics(fast.dynamics, light.dynamics, atol=1e-5)
    _assert_same_dynamics(fast.heldout, light.heldout, atol=1e-5)
    np.testing.assert_allclose(fast.dynamics.logits, light.dynamics.logits, atol=1e-2)
    assert fast.dynamics.seen[:, subset].all() and not fast.dynamics.seen[:, 1000:].any()
    assert fast.heldout.seen[:, 1000:].all() and not fast.heldout.seen[:, subset].any()
    p_light = predict_probs(light.module, digits.test)
    p_fast = predict_probs(fast.module, digits.test)
    np.testing.assert_allclose(p_fast, p_light, atol=1e-5)
    assert accuracy(p_fast, digits.test_targets) > 0.8


def test_iteration_budget_is_exact_and_matches_lightning(digits):
    fits = [
        train_classifier(
            _cnn(1), digits, digits.train_targets, _recipe(e), Budget(iterations=30), seed=1
        )
        for e in ("lightning", "fast")
    ]
    assert fits[0].steps == fits[1].steps == 30
    assert fits[0].samples_seen == fits[1].samples_seen == 1347 + 8 * 64  # 22 steps an epoch
    np.testing.assert_allclose(
        predict_probs(fits[1].module, digits.test),
        predict_probs(fits[0].module, digits.test),
        atol=1e-5,
    )


def test_a_vmapped_group_trains_each_model_as_if_alone(digits):
    """Different subsets (the last batches differ in size, one model takes an extra step per
    epoch), seeds and initial weights; per-model schedules; held-out records."""
    subsets = [np.arange(0, 128), np.arange(200, 329), np.arange(400, 500)]  # 2, 3, 2 steps
    recipe, budget = _recipe("fast", warmup_fraction=0.3), Budget(epochs=3)

    def plans():
        return [Plan(_cnn(10 + k), s, seed=k) for k, s in enumerate(subsets)]

    kw = dict(record=True, record_heldout=True)
    alone = [
        train_models([p], digits, digits.train_targets, recipe, budget, **kw)[0] for p in plans()
    ]
    group = train_models(plans(), digits, digits.train_targets, recipe, budget, **kw)
    for a, g, s in zip(alone, group, subsets, strict=True):
        assert g.steps == a.steps == 3 * int(np.ceil(len(s) / 64))
        _assert_same_dynamics(g.dynamics, a.dynamics, atol=1e-4)
        _assert_same_dynamics(g.heldout, a.heldout, atol=1e-4)
        np.testing.assert_allclose(
            predict_probs(g.module, digits.test), predict_probs(a.module, digits.test), atol=1e-4
        )


def test_a_vmapped_group_in_bf16_trains_each_model_as_if_alone(digits):
    """Under bf16 autocast a group's batch norm computes in float32 (steppers._float32_input: the
    vmapped CUDA kernel fails otherwise); alone and grouped still agree to bf16 rounding."""
    subsets = [np.arange(0, 256), np.arange(300, 556)]
    recipe, budget = _recipe("fast", precision="bf16-mixed"), Budget(epochs=4)

    def plans():
        return [Plan(_cnn(20 + k), s, seed=k) for k, s in enumerate(subsets)]

    alone = [train_models([p], digits, digits.train_targets, recipe, budget)[0] for p in plans()]
    group = train_models(plans(), digits, digits.train_targets, recipe, budget)
    for a, g in zip(alone, group, strict=True):
        pa, pg = predict_probs(a.module, digits.test), predict_probs(g.module, digits.test)
        assert np.abs(pa - pg).mean() < 0.03
        assert abs(accuracy(pa, digits.test_targets) - accuracy(pg, digits.test_targets)) < 0.03


def test_in_float64_a_group_and_single_trainings_agree_to_the_last_digits(digits):
    """In float32 they agree to rounding, which training then amplifies; in float64 the
    rounding is gone and what is left is any difference in the maths (there is none)."""
    subsets = [np.arange(0, 449), np.arange(449, 897), np.arange(897, 1347)]  # 8, 7, 8 steps
    recipe, budget = _recipe("fast", warmup_fraction=0.2), Budget(epochs=3)
    torch.set_default_dtype(torch.float64)
    try:
        plans = [Plan(_cnn(k, width=16), s, seed=k) for k, s in enumerate(subsets)]
        alone = [train_models([p], digits, digits.train_targets, recipe, budget)[0] for p in plans]
        plans = [Plan(_cnn(k, width=16), s, seed=k) for k, s in enumerate(subsets)]
        group = train_models(plans, digits, digits.train_targets, recipe, budget)
    finally:
        torch.set_default_dtype(torch.float32)
    for a, g in zip(alone, group, strict=True):
        wa, wg = a.module.model.state_dict(), g.module.model.state_dict()
        assert wg["fc.weight"].dtype == torch.float64
        for name in wa:
            torch.testing.assert_close(wg[name], wa[name], rtol=1e-9, atol=1e-9)


class _StopAt:
    """A logger that fails at the end of a given epoch: a crash in the middle of a training."""

    def __init__(self, epoch):
        self.epoch = epoch

    def log_metrics(self, metrics, step):
        if metrics["epoch"] == self.epoch:
            raise KeyboardInterrupt

    def finalize(self, status):
        pass


@pytest.mark.parametrize("models", [1, 2])
def test_a_crashed_training_resumes_from_its_checkpoint_to_the_same_result(
    digits, tmp_path, models
):
    recipe = _recipe("fast", checkpoint_every_steps=1)
    subsets = [np.arange(0, 300), np.arange(300, 600)][:models]

    def run(directory, loggers=()):
        plans = [Plan(_cnn(k), s, seed=k, loggers=list(loggers)) for k, s in enumerate(subsets)]
        args = (plans, digits, digits.train_targets, recipe, Budget(epochs=4))
        return train_models(*args, record=True, checkpoint_dir=directory)

    reference = run(None)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, [_StopAt(2)])
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["epoch"] == 2
    resumed = run(tmp_path)
    for r, ref in zip(resumed, reference, strict=True):
        _assert_same_dynamics(r.dynamics, ref.dynamics, atol=1e-6)
        assert r.steps == ref.steps == 4 * 5


def test_loggers_get_one_row_per_epoch(digits, tmp_path):
    from pytorch_lightning.loggers import CSVLogger

    logger = CSVLogger(tmp_path, name="proxy")
    train_classifier(
        _cnn(0), digits, digits.train_targets, _recipe("fast"), Budget(epochs=2), logger=[logger]
    )
    rows = (tmp_path / "proxy").rglob("metrics.csv")
    text = next(rows).read_text().splitlines()
    assert set(text[0].split(",")) == {"epoch", "step", "train/loss"}
    assert len(text) == 3  # header + 2 epochs


def test_engine_choice(digits):
    assert use_fast_engine(_recipe("auto"), digits)
    assert not use_fast_engine(_recipe("lightning"), digits)
    assert not use_fast_engine(dataclasses.replace(_recipe("auto"), devices=2), digits)
    files = dataclasses.replace(digits, train=FileImageSet([("x.png", 0)], None))
    assert not use_fast_engine(_recipe("auto"), files)
    with pytest.raises(UserError, match="in-memory split"):
        use_fast_engine(_recipe("fast"), files)
    with pytest.raises(UserError, match="trainer.engine"):
        _recipe("turbo").validate()
    with pytest.raises(UserError, match="precision"):
        train_classifier(
            _cnn(0),
            digits,
            digits.train_targets,
            _recipe("fast", precision="16-mixed"),
            Budget(iterations=1),
        )


def test_compiled_forward_is_built_once_and_reinitialised_per_model(digits, monkeypatch):
    """Two models of one architecture: one compile; each trains from its own initial weights
    (as without compile) and keeps its own trained weights afterwards."""
    compiles = []

    def fake_compile(module, **kw):  # the caching logic, without a minutes-long CPU compile
        compiles.append(module)
        return module

    monkeypatch.setattr(steppers, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", fake_compile)
    recipe = _recipe("fast", compile=True)
    budget, sub = Budget(epochs=2), np.arange(300)
    plain = [
        train_classifier(
            _cnn(k), digits, digits.train_targets, _recipe("fast"), budget, indices=sub
        )
        for k in (0, 1)
    ]
    compiled = [
        train_classifier(_cnn(k), digits, digits.train_targets, recipe, budget, indices=sub)
        for k in (0, 1)
    ]
    assert len(compiles) == 1
    for p, c in zip(plain, compiled, strict=True):
        np.testing.assert_allclose(
            predict_probs(c.module, digits.test), predict_probs(p.module, digits.test), atol=1e-6
        )


def test_logits_that_would_not_fit_in_memory_are_refused_up_front(monkeypatch):
    from coreset_lab.dynamics import Dynamics

    pages = {"SC_PHYS_PAGES": 1 << 20, "SC_PAGE_SIZE": 4096}  # a 4 GiB machine
    monkeypatch.setattr("os.sysconf", lambda name: pages[name])
    with pytest.raises(UserError, match="143 GiB"):
        Dynamics.empty(60, 1_281_167, 1000, logits=True)  # TDDS on ImageNet, 60 epochs
    assert Dynamics.empty(60, 1_281_167, 1000, logits=False).p_label.shape == (60, 1_281_167)
