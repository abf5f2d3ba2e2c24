"""The golden set (tests/golden.py): every run's coreset, scores and final accuracy are bit for
bit those recorded before the redesign of issue 19, under today's spellings of the options."""

import json

import pytest

from tests.golden import GOLDEN, RUNS, environment, run_one

pytestmark = pytest.mark.slow
RECORDED = json.loads(GOLDEN.read_text())
RECORDED_UNDER = RECORDED.pop("_environment")
# Recorded with the spellings of e57f302 (unseen.*, elfs.*); the golden runs use protocol.*.
OLD_SPELLINGS = False


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return tmp_path_factory.mktemp("golden")  # one store for all, as a sweep shares it


def test_the_golden_set_covers_every_protocol_and_selector():
    text = json.dumps(RUNS)
    for method in (
        "el2n",
        "aum",
        "forgetting",
        "ccs",
        "tdds",
        "d2",
        "prototypicality",
        "random",
        "full",
        "elfs",
        "unseen_holdout",
        "unseen_incremental",
    ):
        assert f"method={method}" in text, method
    for part in ("clustering=temi", "clustering=oracle", "workers=2", "unlabelled_folder"):
        assert part in text, part
    assert sorted(RECORDED) == sorted(RUNS) and len(RUNS) >= 14


def test_the_golden_set_was_recorded_under_these_libraries():
    assert environment() == RECORDED_UNDER, (
        "the golden set was recorded under other library versions: install with `make install` "
        "(constraints.txt), or rerecord it at the commit before the change under test"
    )


@pytest.mark.parametrize("name", sorted(RUNS))
def test_golden_run_is_bit_identical(name, shared):
    if environment() != RECORDED_UNDER:
        pytest.fail(f"recorded under {RECORDED_UNDER}, not {environment()}: not comparable")
    if "fmnist" in name:
        pytest.importorskip("coreset_lab.data.fashion_mnist")
        from pathlib import Path

        if not Path("/usr/share/datasets/fashion-mnist").is_dir():
            pytest.skip("dataset-fashion-mnist is not installed")
    assert run_one(name, shared, old=OLD_SPELLINGS) == RECORDED[name]
