"""The training core: sampler, on-device augmentation, dynamics recorder (also under DDP)."""

import numpy as np
import pytest
import torch

from coreset_lab.data import build_dataset
from coreset_lab.dynamics import Dynamics
from coreset_lab.training.augment import augment, random_translate
from coreset_lab.training.fit import Budget, train_classifier
from coreset_lab.training.predict import accuracy, predict_probs
from coreset_lab.training.recipe import Recipe
from coreset_lab.training.recorder import batch_stats
from coreset_lab.training.sampler import EpochSampler

RECIPE = Recipe(batch_size=16, lr=0.05, accelerator="cpu", progress=False, augment=False)


def test_sampler_covers_each_index_once_per_epoch_across_ranks():
    subset = np.arange(3, 40, 2)  # 19 samples: padding needed for 2 and 4 ranks
    for world in (1, 2, 4):
        shards = [
            list(EpochSampler(subset, 100, seed=1, rank=r, world_size=world)) for r in range(world)
        ]
        assert len({len(s) for s in shards}) == 1  # equal length on every rank
        flat = np.concatenate(shards)
        real = flat[flat < 100]
        assert sorted(real) == sorted(subset)  # every sample exactly once
        assert set(flat[flat >= 100] - 100) <= set(subset)  # padding copies are marked


def test_sampler_ddp_batches_partition_the_single_device_batches():
    subset, batch = np.arange(32), 8
    single = list(EpochSampler(subset, 32, seed=3))
    ranks = [list(EpochSampler(subset, 32, seed=3, rank=r, world_size=2)) for r in range(2)]
    for k in range(4):
        union = ranks[0][k * 4 : (k + 1) * 4] + ranks[1][k * 4 : (k + 1) * 4]
        assert sorted(union) == sorted(single[k * batch : (k + 1) * batch])


def test_sampler_reshuffles_per_epoch_and_is_seeded():
    s = EpochSampler(np.arange(50), 50, seed=0)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first
    s.set_epoch(0)
    assert list(s) == first


def test_random_translate_is_a_shifted_window_of_the_reflect_padded_image():
    torch.manual_seed(0)
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    out = random_translate(x, 2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for b in range(2):
        windows = [padded[b, :, i : i + 6, j : j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)


def test_augment_flip_only_mirrors():
    x = torch.rand(64, 3, 4, 4)
    out = augment(x, crop_pad=0, flip=True)
    for a, b in zip(x, out, strict=False):
        assert torch.equal(a, b) or torch.equal(a.flip(2), b)
    assert not torch.equal(out, x)


def test_batch_stats_match_the_reference_computation():
    logits = torch.randn(7, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    got = batch_stats(logits, labels)
    ref = Dynamics.from_logits(logits.numpy()[None], labels.numpy())
    for k in ("p_label", "p_other", "loss", "p_sqnorm"):
        np.testing.assert_allclose(got[k].numpy(), getattr(ref, k)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got["correct"].numpy() > 0.5, ref.correct[0])


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits")


def _linear(data):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, data.num_classes))


def test_recorder_fills_every_epoch_and_only_the_trained_subset(digits):
    subset = np.arange(0, 300, 3)
    fit = train_classifier(
        _linear(digits),
        digits,
        digits.train_targets,
        RECIPE,
        Budget(epochs=3),
        indices=subset,
        record=True,
        record_logits=True,
    )
    d = fit.dynamics
    assert d.p_label.shape == (3, len(digits.train))
    assert d.seen[:, subset].all() and d.seen.sum() == 3 * len(subset)
    assert np.isnan(d.p_label[:, 1]).all()  # never trained on
    # the recorded logits and the summary statistics agree with each other
    ref = Dynamics.from_logits(d.logits[:, subset].astype(np.float32), digits.train_targets[subset])
    np.testing.assert_allclose(d.p_label[:, subset], ref.p_label, atol=2e-3)
    assert fit.samples_seen == 3 * len(subset)


def test_training_learns_and_iteration_budget_is_exact(digits):
    fit = train_classifier(
        _linear(digits), digits, digits.train_targets, RECIPE, Budget(iterations=150)
    )
    assert fit.steps == 150
    acc = accuracy(predict_probs(fit.module, digits.test), digits.test_targets)
    assert acc > 0.85


def _dynamics_on(devices: int, digits) -> Dynamics:
    recipe = Recipe(
        batch_size=16,
        lr=0.05,
        accelerator="cpu",
        devices=devices,
        progress=False,
        augment=False,
        strategy="ddp_spawn" if devices > 1 else "auto",
    )
    return train_classifier(
        _linear(digits),
        digits,
        digits.train_targets,
        recipe,
        Budget(epochs=2),
        indices=np.arange(64),
        record=True,
        seed=5,
    ).dynamics


def test_ddp_records_every_sample_once_with_single_device_values(digits):
    single = _dynamics_on(1, digits)
    ddp = _dynamics_on(2, digits)
    np.testing.assert_array_equal(ddp.seen, single.seen)
    assert ddp.seen[:, :64].all() and not ddp.seen[:, 64:].any()
    for k in ("p_label", "p_other", "loss", "p_sqnorm"):
        np.testing.assert_allclose(getattr(ddp, k)[:, :64], getattr(single, k)[:, :64], atol=1e-4)
    np.testing.assert_array_equal(ddp.correct, single.correct)


def test_heldout_recorder_predicts_only_unseen_samples_in_eval_mode(digits):
    subset = np.arange(0, 200)
    fit = train_classifier(
        _linear(digits),
        digits,
        digits.train_targets,
        RECIPE,
        Budget(epochs=2),
        indices=subset,
        record=True,
        record_heldout=True,
    )
    h = fit.heldout
    assert not h.seen[:, subset].any() and h.seen[:, 200:].all()
    # the last epoch's held-out record is the final model's clean prediction
    probs = predict_probs(fit.module, digits.train_eval)
    rows = np.arange(200, len(digits.train))
    np.testing.assert_allclose(
        h.p_label[1, rows], probs[rows, digits.train_targets[rows]], atol=1e-5
    )
