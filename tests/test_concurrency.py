"""Several processes sharing one store (a multirun, SLURM array jobs) never build the same
artifact twice at once and never read a half-written one."""

import json
import subprocess
import sys

from coreset_lab.store.artifacts import problem_with
from tests.conftest import subprocess_env

ARGS = ["trainer=debug", "trainer.proxy_epochs=6", "trainer.target_iterations=10", "logger=none"]


def _race(tmp_path, rates, *args) -> list[dict]:
    """One process per prune rate, all at once on one store; their results.json."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "coreset_lab", *ARGS, *args, f"selector.prune_rate={rate}"]
            + [f"paths.store_dir={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / f'run{i}'}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        for i, rate in enumerate(rates)
    ]
    errors = [p.stderr.read() for p in procs]
    assert [p.wait(timeout=600) for p in procs] == [0] * len(rates), [e[-2000:] for e in errors]
    return [
        json.loads((tmp_path / f"run{i}" / "results.json").read_text()) for i in range(len(rates))
    ]


def test_two_processes_racing_for_one_artifact_build_it_once(tmp_path):
    store = tmp_path / "store"
    results = _race(tmp_path, (0.5, 0.7))

    def proxies(kind):
        return [a for r in results for a in r["artifacts"][kind] if a.startswith("scoring_model")]

    assert len(proxies("built")) == 1 and len(proxies("reused")) == 1
    assert proxies("built") == proxies("reused")  # the same artifact: one built, one waited
    scores = [(tmp_path / f"run{i}" / "scores.npy").read_bytes() for i in range(2)]
    assert scores[0] == scores[1]  # both read the same, whole artifact
    artifacts = [p for p in store.glob("*/*") if p.is_dir() and not p.name.startswith(".")]
    assert artifacts and all(problem_with(p) is None for p in artifacts)


def test_three_processes_racing_for_one_batched_unseen_round_train_it_once(tmp_path):
    """A sweep over prune rates shares its fold models: SLURM array jobs race for the same
    vmapped group. One trains it, the others wait for the group's lock and reuse every model."""
    store = tmp_path / "store"
    unseen = ["protocol=unseen", "scorer=margin", "protocol.batched=true", "protocol.folds=3"]
    unseen += ["trainer.checkpoint_every_steps=1"]  # the racing checkpoint writes of the issue
    results = _race(tmp_path, (0.3, 0.5, 0.7), *unseen)
    built = [a for r in results for a in r["artifacts"]["built"] if a.startswith("scoring_model")]
    assert len(built) == len(set(built)) == 3  # each fold model trained once, by one process
    for r in results:
        models = {a for a in r["artifacts"]["built"] + r["artifacts"]["reused"]}
        assert {a for a in models if a.startswith("scoring_model")} == set(built)
    assert not list((store / "scoring_model").glob(".group-*/*"))  # no scratch left behind
    logs = "".join(next((tmp_path / f"run{i}").glob("*.log")).read_text() for i in range(3))
    assert logs.count("as one vmapped group") == 1  # trained by one process, not by each
