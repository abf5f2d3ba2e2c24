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


# --- one row per computation ------------------------------------------------------------------


def _ident(epochs=10, rate=0.5):
    return {
        "dataset": {"name": "cifar10"},
        "scorer": {"_target_": "coreset_lab.scoring.EL2N", "epochs": epochs},
        "selector": {"_target_": "coreset_lab.selection.TopK", "prune_rate": rate},
    }


def _write_run(root, name, epochs=10, rate=0.5, **row):
    from coreset_lab.run.identity import fingerprint, row_of

    ident = _ident(epochs, rate)
    ids = {"method_id": fingerprint(ident), "cell_id": fingerprint(row_of(ident))}
    _write(root, name, method="el2n", prune_rate=rate, identity=ident, **ids, **row)


def test_one_label_over_two_computations_is_two_rows_and_a_note(tmp_path, caplog):
    for seed in (0, 1):
        _write_run(tmp_path, f"a{seed}", epochs=5, seed=seed, test_accuracy=0.5)
        _write_run(tmp_path, f"b{seed}", epochs=10, seed=seed, test_accuracy=0.7)
        _write_run(tmp_path, f"c{seed}", epochs=10, rate=0.9, seed=seed, test_accuracy=0.6)
    text = build_report(tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| el2n")]
    assert len(rows) == 2, text
    five = next(r for r in rows if r.startswith("| el2n {scorer.epochs=5} |"))
    ten = next(r for r in rows if r.startswith("| el2n {scorer.epochs=10} |"))
    assert "50.00 ± 0.00 (2)" in five and "missing" in five  # never mixed with epochs=10
    assert "70.00 ± 0.00 (2)" in ten and "60.00 ± 0.00 (2)" in ten  # one row across rates
    assert "`el2n` on cifar10 covers 2 different computations" in text and "scorer.epochs" in text
    assert any("scorer.epochs" in r.message for r in caplog.records)


def test_the_same_computation_from_two_sweeps_counts_once(tmp_path):
    """`random` swept beside two encoders (or `full` beside five rates) is one computation: one
    seed is one run, whichever directory it is in."""
    _write_run(tmp_path / "sweep1", "0", seed=0, test_accuracy=0.5)
    _write_run(tmp_path / "sweep2", "0", seed=0, test_accuracy=0.6)  # later: a rerun
    _write_run(tmp_path / "sweep2", "1", seed=1, test_accuracy=0.8)
    rows = gather(tmp_path / "sweep1", tmp_path / "sweep2")
    assert sorted(r["test_accuracy"] for r in rows) == [0.6, 0.8]
    main([str(tmp_path / "sweep1"), str(tmp_path / "sweep2"), "--out", str(tmp_path / "out")])
    assert "70.00 ± 14.14 (2)" in (tmp_path / "out" / "report.md").read_text()


def test_a_failure_is_filed_under_its_computation(tmp_path):
    _write_run(tmp_path, "a", seed=0, test_accuracy=0.5)
    _write_run(tmp_path, "b", seed=0, status="failed", error="boom")  # a failed retry
    _write_run(tmp_path, "c", epochs=5, seed=0, status="failed", error="boom")
    (ok,) = [r for r in gather(tmp_path) if r["status"] == "ok"]
    assert ok["test_accuracy"] == 0.5
    assert len(gather(tmp_path)) == 2  # the other computation's failure stays its own


def test_results_without_an_identity_are_read_as_before(tmp_path):
    _write(tmp_path, "old", method="el2n", prune_rate=0.5, test_accuracy=0.4)
    _write_run(tmp_path, "new", seed=0, test_accuracy=0.5)
    text = build_report(tmp_path)
    assert "| el2n {no identity} | 40.00" in text and "| el2n {#" in text


def test_only_the_papers_method_gets_the_papers_number():
    assert lookup("cifar10", "prototypicality[pca]", 0.9)
    assert lookup("cifar10", "prototypicality-easy[pca]", 0.9) == []
    assert lookup("cifar10", "elfs(forgetting)[pca]", 0.9) == []
    assert lookup("cifar10", "elfs[pca] {protocol.beta_search=false}", 0.9)  # a row of elfs' label


def test_a_crashed_run_records_its_identity(make_cfg, tmp_path):
    from coreset_lab.run.identity import identify
    from coreset_lab.run.pipeline import record_failure

    cfg, choices = make_cfg("method=ccs", "scorer=el2n")
    record_failure(tmp_path / "run", cfg, choices, RuntimeError("boom"))
    (row,) = gather(tmp_path)
    ident = identify(cfg, choices)
    assert row["status"] == "failed" and "boom" in row["error"]
    assert (row["method"], row["method_id"], row["cell_id"]) == (
        "ccs(el2n)",
        ident.method_id,
        ident.cell_id,
    )
