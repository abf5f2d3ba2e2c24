"""The same seed gives the same coreset on the same hardware, recomputed from scratch."""

import numpy as np

from coreset_lab.run.pipeline import run

FAST = ["trainer=debug", "trainer.proxy_epochs=3", "trainer.target_iterations=20", "cache=false"]


def _scores_and_coreset(make_cfg, tmp_path, name, *overrides):
    cfg, choices = make_cfg(*FAST, f"paths.output_dir={tmp_path / name}", *overrides)
    result = run(cfg, choices)
    out = tmp_path / name
    return np.load(out / "scores.npy"), np.load(out / "coreset.npy"), result["test_accuracy"]


def test_same_seed_same_coreset_different_seed_different(make_cfg, tmp_path):
    a = _scores_and_coreset(make_cfg, tmp_path, "a", "scorer=aum", "seed=3")
    b = _scores_and_coreset(make_cfg, tmp_path, "b", "scorer=aum", "seed=3")
    c = _scores_and_coreset(make_cfg, tmp_path, "c", "scorer=aum", "seed=4")
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert not np.array_equal(a[1], c[1])


def test_seeded_ccs_sampling_is_reproducible(make_cfg, tmp_path):
    a = _scores_and_coreset(make_cfg, tmp_path, "a", "method=ccs", "seed=1")
    b = _scores_and_coreset(make_cfg, tmp_path, "b", "method=ccs", "seed=1")
    np.testing.assert_array_equal(a[1], b[1])
