"""Bad input, tried systematically: one clear message naming the problem and the fix, a non-zero
exit, no traceback, and the artifact store left intact. The README's troubleshooting section
shows the same table."""

import hashlib
import pickle
import sys

import pytest
import torch

from coreset_lab.store import problem_with
from tests.conftest import run_cli, subprocess_env
from tests.datagen import make_cifar10, make_image_folder

FAST = ["trainer=debug", "trainer.proxy_epochs=1", "trainer.target_iterations=5", "logger=none"]


def _cifar_with_corrupt_batch(tmp):
    make_cifar10(tmp / "cifar", n_train=50, n_test=20)
    (tmp / "cifar" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    return [f"dataset.root={tmp / 'cifar'}"]


def _folder_with_corrupt_image(tmp):
    make_image_folder(tmp / "imgs", classes=3, per_class=4, size=40)
    victim = sorted((tmp / "imgs" / "train").rglob("*.png"))[0]
    victim.write_bytes(b"\x89PNG broken")
    return [f"dataset.root={tmp / 'imgs'}"]


def _folder_with_one_class(tmp):
    make_image_folder(tmp / "one", classes=1, per_class=4, size=40)
    return [f"dataset.root={tmp / 'one'}"]


def _weights_of_another_architecture(tmp):
    import timm

    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), tmp / "r18.pth")
    return [f"encoder.weights={tmp / 'r18.pth'}"]


def _valid_folder(tmp):
    make_image_folder(tmp / "imgs", classes=3, per_class=4, size=40)
    return [f"dataset.root={tmp / 'imgs'}"]


def _empty_dir(tmp):
    (tmp / "empty").mkdir()
    return [f"dataset.root={tmp / 'empty'}"]


# (case id, overrides, setup, words the message must contain, exit status)
CASES = [
    ("unknown-group-option", ["scorer=nope"], None, ["scorer", "nope"], 1),
    ("misspelt-key", ["selector.prun_rate=0.5"], None, ["prun_rate"], 1),
    ("prune-rate-negative", ["selector.prune_rate=-0.1"], None, ["selector.prune_rate"], 2),
    ("prune-rate-one", ["selector.prune_rate=1.0"], None, ["selector.prune_rate"], 2),
    ("prune-rate-text", ["selector.prune_rate=abc"], None, ["selector.prune_rate"], 2),
    (
        "beta-above-prune-rate",
        ["selector=ccs", "selector.beta=0.8", "selector.prune_rate=0.5"],
        None,
        ["selector.beta"],
        2,
    ),
    ("folds-above-class-size", ["protocol=unseen", "unseen.folds=500"], None, ["unseen.folds"], 2),
    (
        "more-clusters-than-samples",
        ["protocol=elfs", "clustering.num_clusters=5000"],
        None,
        ["clustering.num_clusters"],
        2,
    ),
    (
        "missing-data-dir",
        ["dataset=cifar10", "dataset.root=/nonexistent/cifar"],
        None,
        ["/nonexistent/cifar", "dataset.root"],
        2,
    ),
    ("empty-data-dir", ["dataset=cifar10"], _empty_dir, ["dataset.root"], 2),
    ("corrupt-data-file", ["dataset=cifar10"], _cifar_with_corrupt_batch, ["data_batch_1"], 2),
    (
        "corrupt-image",
        ["dataset=image_folder", "dataset.image_size=32", "model=resnet18"],
        _folder_with_corrupt_image,
        ["cannot read image"],
        2,
    ),
    ("image-folder-with-one-class", ["dataset=image_folder"], _folder_with_one_class, ["class"], 2),
    ("unknown-engine", ["trainer.engine=turbo"], None, ["trainer.engine", "turbo"], 2),
    (
        "fast-engine-on-an-image-folder",
        ["dataset=image_folder", "dataset.image_size=32", "model=resnet18", "trainer.engine=fast"],
        _valid_folder,
        ["trainer.engine=fast", "in-memory"],
        2,
    ),
    (
        "unknown-scoring-option",
        ["+trainer.scoring.batchsize=512"],
        None,
        ["trainer.scoring", "batchsize"],
        2,
    ),
    (
        "batched-and-workers",
        ["protocol=unseen", "unseen.batched=true", "unseen.workers=2"],
        None,
        ["unseen.batched"],
        2,
    ),
    (
        "weights-for-another-architecture",
        ["protocol=elfs", "encoder=dino_vits16", "encoder.batch_size=8"],
        _weights_of_another_architecture,
        ["r18.pth"],
        2,
    ),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store holding finished artifacts, which no bad input may touch."""
    root = tmp_path_factory.mktemp("store")
    r = run_cli(
        *FAST, f"paths.store_dir={root / 'store'}", f"hydra.run.dir={root / 'run'}", cwd=root
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return root / "store"


def _fingerprint(store):
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def _assert_intact(store, before):
    """Everything that was there is byte-for-byte unchanged; whatever is finished is valid."""
    after = _fingerprint(store)
    assert {p: after.get(p) for p in before} == before
    finished = [p for p in store.glob("*/*") if p.is_dir() and not p.name.startswith(".")]
    assert all(problem_with(p) is None for p in finished)


def _assert_clean_failure(r, words, status):
    text = r.stderr + r.stdout
    assert r.returncode == status, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    for word in words:
        assert word in r.stderr, (word, r.stderr[-2000:])


@pytest.mark.parametrize("case, overrides, setup, words, status", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_and_keeps_the_store(
    tmp_path, store, case, overrides, setup, words, status
):
    before = _fingerprint(store)
    extra = setup(tmp_path) if setup else []
    r = run_cli(
        *FAST,
        *overrides,
        *extra,
        f"paths.store_dir={store}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    _assert_clean_failure(r, words, status)
    _assert_intact(store, before)


DISK_FULL = """
import errno, numpy, sys
def full(file, *a, **k):
    raise OSError(errno.ENOSPC, "No space left on device", str(file))
numpy.save = full
from coreset_lab.cli import main
sys.argv = ["coreset-lab", *sys.argv[1:]]
main()
"""


def test_disk_full_while_writing(tmp_path, store):
    import subprocess

    before = _fingerprint(store)
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            DISK_FULL,
            *FAST,
            "seed=7",
            f"paths.store_dir={store}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )
    _assert_clean_failure(r, ["no space left", "paths.store_dir"], 2)
    _assert_intact(store, before)  # the half-built artifact stays in its .partial directory


def test_cifar_fixture_is_really_a_pickle(tmp_path):
    # guards the corrupt-file case above: the untouched batch files do unpickle
    make_cifar10(tmp_path, n_train=10, n_test=10)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "rb") as fh:
        assert b"data" in pickle.load(fh, encoding="bytes")
