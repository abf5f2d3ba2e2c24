"""Scoring models' own recipe (trainer.scoring, trainer=fast) and UNSEEN's vmapped rounds."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from coreset_lab.errors import UserError
from coreset_lab.run.pipeline import run
from coreset_lab.services.models import scoring_recipe

FAST = ["trainer=debug", "trainer.proxy_epochs=3", "trainer.target_iterations=10", "cache=false"]


def test_scoring_overrides_apply_to_scoring_models_only_and_drop_label_smoothing():
    trainer = OmegaConf.create(
        {"batch_size": 64, "lr": 0.05, "label_smoothing": 0.2, "proxy_epochs": 7,
         "scoring": {"batch_size": 512, "lr": None, "warmup_fraction": 0.1}}
    )  # fmt: skip
    recipe, epochs = scoring_recipe(trainer)
    assert (recipe.batch_size, recipe.lr, recipe.warmup_fraction, epochs) == (512, 0.05, 0.1, 7)
    assert recipe.label_smoothing == 0.0
    assert recipe.warmup(1000) == 100
    trainer.scoring = {"batchsize": 512}
    with pytest.raises(UserError, match="batchsize"):
        scoring_recipe(trainer)


def test_fast_scoring_recipe_trains_the_proxy_with_its_own_batch(make_cfg):
    cfg, choices = make_cfg(*FAST, "trainer/scoring=fast", "scorer=aum")
    result = run(cfg, choices)
    n = result["n_train"]
    # 3 epochs at batch 512 over the 1347 digits: 3 steps each (the proxy); target: 10 steps
    assert cfg.trainer.scoring.batch_size == 512
    assert result["cost"]["samples_seen"] == 3 * n
    assert result["target_steps"] == 10


def _unseen(make_cfg, tmp_path, name, *extra):
    cfg, choices = make_cfg(
        *FAST,
        "protocol=unseen",
        "scorer=aum",
        "protocol.folds=3",
        "protocol.stages=2",
        "selector.prune_rate=0.6",
        f"paths.output_dir={tmp_path / name}",
        *extra,
    )
    result = run(cfg, choices)
    return result, np.load(tmp_path / name / "scores.npy"), np.load(tmp_path / name / "coreset.npy")


def test_unseen_batched_rounds_select_what_sequential_training_selects(make_cfg, tmp_path):
    """Equal to rounding: the vmapped convolutions sum in another order, and training amplifies
    last-bit differences epoch after epoch (~1e-6 after one epoch here, ~1e-3 after two; in
    float64 the two agree to 1e-13, tests/test_fast_engine.py)."""
    seq, seq_scores, seq_coreset = _unseen(make_cfg, tmp_path, "seq", "trainer.proxy_epochs=1")
    vm, vm_scores, vm_coreset = _unseen(
        make_cfg, tmp_path, "vmap", "trainer.proxy_epochs=1", "protocol.batched=true"
    )
    np.testing.assert_allclose(vm_scores, seq_scores, atol=1e-4)
    assert len(np.intersect1d(vm_coreset, seq_coreset)) >= 0.99 * len(seq_coreset)
    assert vm["cost"] == seq["cost"]  # same models counted, each built once
    assert vm["cost"]["models_built_this_run"] == 3 + 1  # 3 fold models, 1 stage model
    assert vm["unseen"]["fold_heldout_accuracy"] == pytest.approx(
        seq["unseen"]["fold_heldout_accuracy"], abs=0.01
    )
