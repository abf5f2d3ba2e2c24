"""The golden set: runs whose coreset, scores and final accuracy a refactor must keep bit for bit.

Recorded once at a commit (`python -m tests.golden record`, OMP_NUM_THREADS=1) into
tests/golden.json; tests/test_golden.py reruns every entry and compares. A change that is meant to
alter a computation rerecords the file in the same commit and says why.

Bit-identity holds only under the same libraries: `_environment` records the versions (as the
store's keys have them) and the test refuses to compare under others. `make install` installs
the versions of constraints.txt, the ones the set was recorded with.

Each entry is the command line of one run (the spellings of today's configs); `select` entries go
through the Python API. All of them share one store, as a sweep would, so each scoring model is
trained once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).with_name("golden.json")
DIGITS = ["dataset=digits", "trainer=debug", "logger=none"]
FMNIST = [
    "dataset=fashion_mnist",
    "dataset.root=/usr/share/datasets/fashion-mnist",
    "dataset.train_subset=400",
    "dataset.test_subset=200",
    "trainer=debug",
    "logger=none",
]
BETA = ["protocol.beta_grid=[0.0,0.2]"]
SMALL_TEMI = ["clustering.epochs=3", "clustering.warmup_epochs=1", "clustering.num_heads=4"]

# name -> command-line overrides (API entries: {"api": kwargs})
RUNS: dict[str, list[str] | dict] = {
    "el2n": [*DIGITS, "method=el2n", "selector.prune_rate=0.7"],
    "aum": [*DIGITS, "method=aum", "selector.prune_rate=0.7"],
    "forgetting": [*DIGITS, "method=forgetting", "selector.prune_rate=0.5"],
    "ccs": [*DIGITS, "method=ccs", "selector.prune_rate=0.7"],
    "tdds": [
        *DIGITS,
        "method=tdds",
        "trainer.proxy_epochs=4",
        "scorer.trajectory_len=4",
        "scorer.window=2",
        "selector.prune_rate=0.5",
    ],
    "random": [*DIGITS, "method=random", "selector.prune_rate=0.7"],
    "full": [*DIGITS, "method=full"],
    "d2": [*DIGITS, "method=d2", "selector.prune_rate=0.7"],
    "prototypicality": [*DIGITS, "method=prototypicality", "selector.prune_rate=0.7"],
    "elfs_pca_kmeans": [*DIGITS, "method=elfs", "selector.prune_rate=0.7", *BETA],
    "elfs_fixed_beta": [
        *DIGITS,
        "method=elfs",
        "selector.prune_rate=0.5",
        "protocol.beta_search=false",
        "selector.beta=0.1",
    ],
    "elfs_temi": [
        *DIGITS,
        "method=elfs",
        "clustering=temi",
        *SMALL_TEMI,
        "selector.prune_rate=0.7",
        *BETA,
    ],
    "elfs_oracle": [
        *DIGITS,
        "method=elfs",
        "clustering=oracle",
        "clustering.noise=0.2",
        "selector.prune_rate=0.7",
        *BETA,
    ],
    "unseen_holdout": [
        *DIGITS,
        "method=unseen_holdout",
        "scorer=margin",
        "selector.prune_rate=0.7",
    ],
    "unseen_holdout_workers": [
        *DIGITS,
        "method=unseen_holdout",
        "scorer=el2n",
        "protocol.workers=2",
        "selector.prune_rate=0.7",
    ],
    "unseen_incremental": [
        *DIGITS,
        "method=unseen_incremental",
        "scorer=entropy",
        "protocol.folds=3",
        "selector.prune_rate=0.7",
    ],
    "unseen_incremental_workers": [
        *DIGITS,
        "method=unseen_incremental",
        "scorer=aum",
        "protocol.folds=3",
        "protocol.stages=3",
        "protocol.workers=2",
        "protocol.class_aware=true",
        "selector.prune_rate=0.6",
    ],
    "fmnist_el2n": [*FMNIST, "method=el2n", "selector.prune_rate=0.5"],
    "fmnist_elfs": [*FMNIST, "method=elfs", "selector.prune_rate=0.5", *BETA],
    "folder_elfs": [
        "dataset=unlabelled_folder",
        "dataset.root={folder}",
        "clustering.num_clusters=3",
        "encoder.dim=16",
        "trainer=debug",
        "logger=none",
        "method=elfs",
        "selector.prune_rate=0.5",
        *BETA,
    ],
    "api_d2": {
        "api": dict(data="digits", method="d2", prune_rate=0.8, trainer="debug", logger="none")
    },
}

# Today's spellings of options that were renamed since the golden set was recorded: a golden run
# is the same computation under its new spelling.
OLD_SPELLING = {
    "protocol.beta_grid": "elfs.beta_grid",
    "protocol.beta_search": "elfs.beta_search",
    "protocol.workers": "unseen.workers",
    "protocol.folds": "unseen.folds",
    "protocol.stages": "unseen.stages",
    "protocol.class_aware": "unseen.class_aware",
}


def respell(overrides: list[str], old: bool) -> list[str]:
    if not old:
        return list(overrides)
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        out.append(f"{OLD_SPELLING.get(key, key)}={value}")
    return out


def digest(array) -> str | None:
    if array is None:
        return None
    arr = np.ascontiguousarray(array)
    return f"{arr.dtype}{list(arr.shape)}:" + hashlib.sha256(arr.tobytes()).hexdigest()[:16]


def make_folder(root: Path) -> Path:
    from tests.datagen import make_image_folder

    make_image_folder(root, classes=3, per_class=30, size=12, splits=("pool",))
    return root / "pool"


def run_one(name: str, tmp: Path, old: bool = False) -> dict:
    """One golden run in this process, in `tmp` (its store shared across calls)."""
    import coreset_lab
    from coreset_lab.run.config import compose_config
    from coreset_lab.run.pipeline import run

    store = [f"paths.store_dir={tmp}/store", f"paths.root_dir={tmp}"]
    spec = RUNS[name]
    if isinstance(spec, dict):
        core = coreset_lab.select(
            **spec["api"],
            **{"paths.store_dir": tmp / "store", "hydra.run.dir": tmp / name},
        )
        result, coreset, scores = core.info, core.indices, core.scores
    else:
        folder = make_folder(tmp / "folder") if "{folder}" in " ".join(spec) else None
        overrides = [o.format(folder=folder) for o in respell(spec, old)]
        cfg, choices = compose_config([*store, f"paths.output_dir={tmp}/{name}", *overrides])
        result = run(cfg, choices)
        out = tmp / name
        coreset = np.load(out / "coreset.npy")
        scores = np.load(out / "scores.npy") if (out / "scores.npy").exists() else None
    return {
        "coreset": digest(np.asarray(coreset, dtype=np.int64)),
        "coreset_size": int(len(coreset)),
        "scores": digest(None if scores is None else np.asarray(scores, dtype=np.float64)),
        "test_accuracy": result.get("test_accuracy"),
    }


def environment() -> dict:
    """The libraries that compute the results, and the machine (the store's runtime key)."""
    from coreset_lab.store.fingerprint import runtime_fingerprint

    return runtime_fingerprint("cpu")


def record(names: list[str], old: bool) -> None:
    import tempfile

    assert os.environ.get("OMP_NUM_THREADS") == "1", "record with OMP_NUM_THREADS=1 (as tests run)"
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    golden["_environment"] = environment()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or list(RUNS):
            golden[name] = run_one(name, Path(tmp), old)
            print(name, golden[name], flush=True)
            GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    # python -m tests.golden record [--old] [NAME ...]
    args = sys.argv[2:]
    record([a for a in args if a != "--old"], old="--old" in args)
