"""The report: tables beside the papers' numbers, missing and failed cells, plots."""

import json

from coreset_lab.report.cli import build_report, main
from coreset_lab.report.gather import gather
from coreset_lab.report.paper import lookup


def _write(root, name, **row):
    base = {"status": "ok", "dataset": "cifar10", "seed": 0, "cost": {"sample_epochs": 200.0}}
    d = root / name
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps({**base, **row}))


def test_paper_numbers_are_found_with_their_exactness():
    (elfs,) = lookup("cifar10", "elfs", 0.9)
    assert elfs.value == 86.9 and not elfs.exact and elfs.paper == "elfs"
    assert lookup("cifar10", "elfs[simclr]", 0.9) == [elfs]  # variants share the number
    assert [p.value for p in lookup("cifar100", "tdds", 0.9)] == [54.51]
    assert lookup("digits", "elfs", 0.9) == []


def test_table_has_mean_std_seeds_paper_missing_and_failed(tmp_path):
    for seed, acc in enumerate([0.80, 0.84]):
        _write(tmp_path, f"e{seed}", method="elfs", prune_rate=0.9, seed=seed, test_accuracy=acc)
    _write(tmp_path, "r0", method="random", prune_rate=0.9, test_accuracy=0.7)
    _write(tmp_path, "r1", method="random", prune_rate=0.5, status="failed", error="boom")
    for i, rate in enumerate([0.5, 0.9]):  # `full` swept over rates counts once per seed
        _write(tmp_path, f"f{i}", method="full", prune_rate=rate, test_accuracy=0.95)
    text = build_report(tmp_path)
    elfs_row = next(line for line in text.splitlines() if line.startswith("| elfs"))
    assert "82.00 ± 2.83 (2)" in elfs_row and "paper 86.9~ [elfs]" in elfs_row
    assert "missing" in elfs_row  # no elfs run at p=0.5
    random_row = next(line for line in text.splitlines() if line.startswith("| random"))
    assert "failed (1)" in random_row and "70.00 ± 0.00 (1)" in random_row
    full_row = next(line for line in text.splitlines() if line.startswith("| full"))
    assert "95.00 ± 0.00 (1)" in full_row and "paper 95.5~" in full_row
    csv_text = (tmp_path / "report.csv").read_text()
    assert "cifar10,elfs,0.9,0.8200" in csv_text
    assert (tmp_path / "accuracy_vs_prune_rate.png").stat().st_size > 1000


def test_rerun_replaces_and_failed_retry_does_not_hide_success(tmp_path):
    _write(tmp_path, "a", method="aum", prune_rate=0.5, test_accuracy=0.5)
    _write(tmp_path, "b", method="aum", prune_rate=0.5, test_accuracy=0.6)
    _write(tmp_path, "c", method="aum", prune_rate=0.5, status="failed")
    (row,) = gather(tmp_path)
    assert row["test_accuracy"] == 0.6


def test_cli_without_results_exits_with_a_message(tmp_path, capsys):
    try:
        main([str(tmp_path)])
    except SystemExit as e:
        assert "no results.json" in str(e.code)
    else:
        raise AssertionError("expected an exit")
