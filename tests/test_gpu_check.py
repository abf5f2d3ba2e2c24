"""benchmarks/gpu_check.py works before a GPU is lent: its --dry-run end to end on the CPU, and its
time limits (a step past its limit is stopped and recorded; a run out of budget skips the rest)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

REPO = Path(__file__).resolve().parent.parent
STEPS = ["env", "tests", "engines", "parallel", "e2e", "cell", "knn"]


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import gpu_check

    return gpu_check


def _dry_run(script: str, out: Path, timeout: int) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--dry-run", "--out", str(out)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.slow  # about 40 s: CI runs it in the slow tier (.ci/run), before any GPU is lent
def test_dry_run_writes_the_summary_and_its_files(tmp_path):
    out = tmp_path / "out"
    proc = _dry_run("gpu_check.py", out, timeout=300)
    assert sorted(p.name for p in out.iterdir()) == [
        "junit.xml", "log.txt", "summary.json", "summary.md"]  # fmt: skip
    report = json.loads((out / "summary.json").read_text())
    assert report["mode"] == "dry-run"
    assert [s["name"] for s in report["steps"]] == STEPS
    assert all(s["status"] == "ok" for s in report["steps"]), report["steps"]
    data = {s["name"]: s.get("data") for s in report["steps"]}
    assert data["env"]["torch_cuda"]["available"] is False
    assert set(data["engines"]["loops"]) == {"fast engine", "Lightning engine",
                                             "plain DataLoader loop"}  # fmt: skip
    assert set(data["parallel"]["ways"]) == {"sequential", "vmap (one group)"}
    assert len(data["e2e"]["rows"]) == 2 and len(data["cell"]["rows"]) == 1
    assert [r["backend"] for r in data["knn"]["rows"]] == ["torch-cpu", "faiss-cpu"]
    text = (out / "summary.md").read_text()
    assert text.strip() in proc.stdout
    assert "7 ok" in text and "skipped: needs a CUDA device" in text
    for title in ("Environment", "GPU tests", "Training engines", "Several models on one device",
                  "End to end", "One table cell", "k-NN at scale"):  # fmt: skip
        assert f"## {title}\n" in text
    log = (out / "log.txt").read_text()
    assert all(f"===== {name}: ok" in log for name in STEPS)


def _fake_steps(gpu_check, sleeps):
    py = sys.executable
    return [
        gpu_check.Step(f"s{i}", [py, "-c", f"import time; time.sleep({t})"], timeout=5, minimum=1)
        for i, t in enumerate(sleeps)
    ]


def _run(gpu_check, tmp_path, monkeypatch, sleeps, budget):
    monkeypatch.setattr(gpu_check, "steps", lambda dry, work: _fake_steps(gpu_check, sleeps))
    (tmp_path / "log.txt").write_text("")
    return gpu_check.run_all(True, budget, tmp_path, tmp_path)["steps"]


def test_a_step_is_cut_to_keep_time_for_the_steps_after_it(gpu_check, tmp_path, monkeypatch):
    """Budget 3.5 s, two more steps needing 1 s each: the first is stopped after 1.5 s."""
    first, *rest = _run(gpu_check, tmp_path, monkeypatch, [30, 0, 0], budget=3.5)
    assert (first["status"], first["rc"], first["limit_s"]) == ("timeout", None, 1.5), first
    assert first["seconds"] < 10  # stopped, not waited for
    assert [s["status"] for s in rest] == ["ok", "ok"]


def test_steps_that_do_not_fit_the_budget_are_skipped(gpu_check, tmp_path, monkeypatch):
    """Budget 1.2 s: the first step gets all of it (earlier steps first), the rest nothing."""
    report = _run(gpu_check, tmp_path, monkeypatch, [30, 0, 0], budget=1.2)
    assert [s["status"] for s in report] == ["timeout", "skipped", "skipped"]
    text = gpu_check.summarize(
        {"mode": "dry-run", "budget_s": 1.2, "total_s": 1, "steps": report}, tmp_path / "none.xml"
    )
    assert "| s1 | skipped (out of budget) |" in text and "## End to end\nno results" in text


@pytest.mark.slow  # about 3 min on 2 cores: the claims tables at toy sizes, before a GPU is lent
def test_gpu_claims_dry_run_measures_every_table_and_reports(tmp_path):
    out = tmp_path / "out"
    _dry_run("gpu_claims.py", out, timeout=900)
    summary = json.loads((out / "summary.json").read_text())
    names = ["group", "regime", "ccs", "elfs", "baselines", "unseen", "report", "parallel"]
    assert [s["name"] for s in summary["steps"]] == names
    assert all(s["status"] == "ok" for s in summary["steps"]), summary["steps"]
    claims = {c["claim"]: c for c in json.loads((out / "claims.json").read_text())}
    # every table measured its rows at p = 0.9 for seeds 0 1 2 (the toy numbers mean nothing)
    assert "n=3" in claims["CCS ≥ random at every rate"]["measured"]
    assert "n=3" in claims["elfs[pca] beats random at p ≥ 0.7"]["measured"]
    assert "margin: p=0.9" in claims["incremental (4 steps) beats single-step"]["measured"]
    report = (out / "report.md").read_text()
    assert "| scoring models memorise" in report and "d2[pca]" in report
    with tarfile.open(out / "runs.tar.gz") as tar:
        results = [n for n in tar.getnames() if n.endswith("results.json")]
    assert len(results) >= 12 * 3  # random, full, ccs, aum, elfs x2, d2, proto, unseen x3 x seeds
    assert all("claims_60k/" in n for n in results)
