"""Method identity: the label says what a run computes, and the fingerprint separates every two
computations while joining every two runs of one computation. Composes configs only (no
training)."""

from functools import cache

import pytest

from coreset_lab.run.config import compose_config
from coreset_lab.run.identity import differing_keys, fingerprint, flatten, identify


@cache
def _compose(overrides: tuple[str, ...]):
    cfg, choices = compose_config(["logger=none", *overrides])
    return identify(cfg, choices)


def _identity(*overrides):
    return _compose(tuple(overrides))


@pytest.mark.parametrize(
    "overrides, label",
    [
        ([], "el2n"),
        (["method=random"], "random"),
        (["method=full"], "full"),
        (["method=aum"], "aum"),
        (["method=forgetting"], "forgetting"),
        (["method=margin"], "margin"),
        (["method=entropy"], "entropy"),
        (["method=least_confidence"], "least_confidence"),
        (["method=tdds"], "tdds"),
        (["method=ccs"], "ccs"),
        (["method=elfs", "encoder=simclr"], "elfs[simclr]"),
        (["method=d2"], "d2[pca]"),
        (["method=prototypicality"], "prototypicality[pca]"),
        (["method=unseen_holdout", "scorer=margin"], "unseen-s1-margin"),
        (["method=unseen_incremental", "scorer=el2n"], "unseen-s4-el2n"),
        (["method=badge"], "badge"),
        (
            ["method=badge", "protocol.rounds=4", "protocol.initial_fraction=0.2"],
            "badge-r4-init0.2",
        ),
        (["method=badge", "protocol.chunk_size=7"], "badge"),  # memory only
        # a scorer= override on a preset is what runs, so it is what the label says
        (["method=tdds", "scorer=margin"], "margin"),
        (["method=ccs", "scorer=el2n"], "ccs(el2n)"),
        (["method=random", "scorer=el2n"], "random"),  # the random selector reads no score
        (["scorer=random"], "topk(random)"),
        (["selector.keep=easy"], "el2n-easy"),
        (["selector.class_balanced=true"], "el2n-balanced"),
        (["selector=double_end"], "double_end(el2n)"),
        (["protocol=unseen", "scorer=margin", "selector.keep=easy"], "unseen-s1-margin-easy"),
        (["protocol=unseen", "scorer=aum", "selector=ccs"], "unseen-s1-aum-ccs"),
        (
            ["protocol=unseen", "scorer=margin", "protocol.class_aware=true"],
            "unseen-s1-margin-classaware",
        ),
        (["method=elfs", "scorer=forgetting"], "elfs(forgetting)[pca]"),
        (["method=d2", "scorer=aum"], "d2(aum)[pca]"),
        (["method=prototypicality", "selector.keep=easy"], "prototypicality-easy[pca]"),
        # a protocol never chooses the scorer (the default, el2n, here): presets do
        (["protocol=elfs", "selector=topk"], "lf-el2n[pca]"),
        (["protocol=elfs", "selector=random"], "random"),
    ],
)
def test_label_says_what_is_computed(overrides, label):
    assert _identity(*overrides).label == label


def test_a_preset_with_another_scorer_is_that_scorers_computation():
    """`method=tdds scorer=margin` is top-k margin: the same computation as method=margin."""
    assert _identity("method=tdds", "scorer=margin") == _identity("method=margin")
    ccs = _identity("method=ccs")
    assert _identity("method=ccs", "scorer=el2n").method_id != ccs.method_id


def test_badge_identity_holds_what_changes_its_picks():
    plain = _identity("method=badge")
    assert plain.identity["protocol"] == {"name": "badge", "rounds": 9, "initial_fraction": 0.1}
    assert _identity("method=badge", "protocol.chunk_size=7").method_id == plain.method_id
    assert _identity("method=badge", "protocol.rounds=4").method_id != plain.method_id
    assert "proxy_epochs" in plain.identity["trainer"]  # its rounds train scoring models
    assert plain.method_id != _identity("method=random").method_id


def test_fitting_and_unseen_never_share_a_label_or_an_id():
    fitting = _identity("method=fitting", "scorer=margin")
    unseen = _identity("method=unseen_holdout", "scorer=margin")
    assert fitting.label != unseen.label and fitting.method_id != unseen.method_id
    hard = _identity("protocol=unseen", "scorer=margin")
    easy = _identity("protocol=unseen", "scorer=margin", "selector.keep=easy")
    assert hard.label != easy.label and hard.method_id != easy.method_id


def test_what_the_protocol_ignores_is_one_computation():
    fulls = [_identity("method=full", f"selector.prune_rate={p}") for p in (0.3, 0.9)]
    assert len({i.method_id for i in fulls}) == 1
    randoms = [
        _identity("method=random", "encoder=pca"),
        _identity("method=random", "encoder=simclr", "clustering=temi"),
        _identity("method=random", "scorer=aum", "trainer.proxy_epochs=3"),
        _identity("protocol=elfs", "selector=random", "encoder=simclr"),
    ]
    assert len({i.method_id for i in randoms}) == 1
    # no scoring model: its epochs and recipe are not read
    assert (
        _identity("method=full", "trainer.proxy_epochs=3").method_id
        == _identity("method=full").method_id
    )
    # fitting reads no encoder or clustering
    assert _identity("method=ccs", "encoder=simclr").method_id == _identity("method=ccs").method_id


SAME_COMPUTATION = [
    "seed=3",
    "task_name=other",
    "paper=elfs",
    "cache=false",
    "logger=csv",
    "paths.store_dir=/elsewhere",
    "trainer.engine=lightning",
    "trainer.compile=true",
    "trainer.progress=true",
    "trainer.num_workers=2",
    "trainer.devices=1",
    "trainer.checkpoint_every_steps=7",
    "dataset.root=/mnt/elsewhere",
]


def test_seed_paths_and_speed_options_are_not_the_computation():
    base = ["protocol=unseen", "scorer=margin"]
    changed = _identity(*base, *SAME_COMPUTATION)
    assert changed.method_id == _identity(*base).method_id


@pytest.mark.parametrize(
    "change",
    [
        "dataset.train_subset=500",
        "model.kwargs.width=8",
        "trainer.lr=0.01",
        "trainer.proxy_epochs=3",
        "trainer.scoring.batch_size=512",
        "trainer.target_iterations=50",
        "selector.prune_rate=0.7",
        "protocol.folds=3",
        "protocol.normalize=rank",
        "protocol.repeats=2",
    ],
)
def test_what_the_computation_reads_changes_its_id(change):
    base = ["protocol=unseen", "scorer=margin"]
    assert _identity(*base, change).method_id != _identity(*base).method_id


def test_cell_id_is_the_row_across_prune_rates():
    a = _identity("selector.prune_rate=0.3")
    b = _identity("selector.prune_rate=0.9")
    assert a.method_id != b.method_id and a.cell_id == b.cell_id
    assert _identity("scorer.epochs=3").cell_id != a.cell_id


def test_options_read_only_in_some_settings():
    one_stage = ["protocol=unseen", "scorer=margin", "protocol.stages=1"]
    assert (
        _identity(*one_stage, "protocol.initial_fraction=0.3").method_id
        == _identity(*one_stage).method_id
    )
    staged = ["protocol=unseen", "scorer=margin", "protocol.stages=3"]
    assert (
        _identity(*staged, "protocol.initial_fraction=0.3").method_id
        != _identity(*staged).method_id
    )
    assert _identity(*staged, "protocol.workers=2").method_id == _identity(*staged).method_id
    # ELFS' β search replaces selector.beta; without the search, β is what runs
    elfs = ["method=elfs", "selector.prune_rate=0.5"]
    assert _identity(*elfs, "selector.beta=0.2").method_id == _identity(*elfs).method_id
    fixed = [*elfs, "protocol.beta_search=false"]
    assert _identity(*fixed, "selector.beta=0.2").method_id != _identity(*fixed).method_id


def test_a_weights_file_enters_by_its_name():
    enc = ["method=elfs", "encoder=dino_vitb16"]
    a = _identity(*enc, "encoder.weights=/data/w/dino.pth")
    b = _identity(*enc, "encoder.weights=/mnt/other/dino.pth")
    c = _identity(*enc, "encoder.weights=/data/w/swav.pth")
    assert a.method_id == b.method_id != c.method_id
    assert a.label == "elfs[dino_vitb16]"


def test_fingerprint_is_canonical():
    assert fingerprint({"lr": 1, "a": [1, 2]}) == fingerprint({"a": [1.0, 2.0], "lr": 1.0})
    assert fingerprint({"flag": True}) != fingerprint({"flag": 1})


def test_differing_keys_name_config_paths():
    a = {"scorer": {"epochs": 5}, "trainer": {"lr": 0.1, "batch_size": 64}}
    b = {"scorer": {"epochs": 10}, "trainer": {"lr": 0.1, "batch_size": 64}, "elfs": {"x": 1}}
    assert flatten(a) == {"scorer.epochs": 5, "trainer.lr": 0.1, "trainer.batch_size": 64}
    assert differing_keys([a, b]) == ["elfs.x", "scorer.epochs"]
