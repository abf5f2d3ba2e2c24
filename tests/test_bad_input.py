"""Bad input, tried systematically: one clear message naming the problem and the fix, a non-zero
exit, no traceback, and the artifact store left intact. The README's troubleshooting section
shows the same table."""

import hashlib
import pickle
import re
import sys

import pytest
import torch

from coreset_lab.store.artifacts import problem_with
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
    (
        "folds-above-class-size",
        ["protocol=unseen", "protocol.folds=500"],
        None,
        ["protocol.folds"],
        2,
    ),
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
        ["protocol=unseen", "protocol.batched=true", "protocol.workers=2"],
        None,
        ["protocol.batched"],
        2,
    ),
    # values accepted before the checks of coreset_lab/run/checks.py, which then crashed after
    # training (seed) or trained a NaN model (lr), and a combination that trained every fold model
    # before dying
    ("seed-negative", ["seed=-1"], None, ["seed must be an integer in [0, "], 2),
    ("lr-nan", ["trainer.lr=nan"], None, ["trainer.lr must be a real number"], 2),
    (
        "unseen-with-d2",
        ["protocol=unseen", "selector=d2"],
        None,
        ["selector=d2", "protocol=elfs"],
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


# Every case goes through the real CLI (8 s each here). These stay in the fast tier: one of each
# kind of failure (Hydra's own, a value, a combination, the data, a weights file); the others
# repeat that path with another message, and the config values are also refused in-process
# below (test_bad_config_*), so they run in the slow tier.
CLI_FAST = {
    "unknown-group-option",
    "prune-rate-text",
    "missing-data-dir",
    "corrupt-image",
    "seed-negative",
    "lr-nan",
    "unseen-with-d2",
    "weights-for-another-architecture",
}


def _cli_params(cases):
    return [
        pytest.param(*c, id=c[0], marks=() if c[0] in CLI_FAST else pytest.mark.slow) for c in cases
    ]


@pytest.mark.parametrize("case, overrides, setup, words, status", _cli_params(CASES))
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
from coreset_lab.app.cli import main
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


# --- refused before any work: in-process, so cheap enough to try every value ------------------
# Each case must fail with a UserError naming the key before the dataset is loaded (CONFIG) or,
# for checks that need the train set, before any model or artifact is built (DATA).

CONFIG_CASES = [
    (["seed=-1"], "seed"),
    (["seed=4294967296"], "seed"),
    (["seed=abc"], "seed"),
    (["trainer.lr=nan"], "trainer.lr"),
    (["trainer.lr=inf"], "trainer.lr"),
    (["trainer.lr=0"], "trainer.lr"),
    (["trainer.scoring.lr=nan"], "trainer.scoring.lr"),
    (["trainer.min_lr=nan"], "trainer.min_lr"),
    (["trainer.min_lr=1.0"], "trainer.min_lr"),
    (["trainer.momentum=1.5"], "trainer.momentum"),
    (["trainer.momentum=0"], "trainer.nesterov"),
    (["trainer.weight_decay=-1e-4"], "trainer.weight_decay"),
    (["trainer.batch_size=0"], "trainer.batch_size"),
    (["trainer.batch_size=64.5"], "trainer.batch_size"),
    (["trainer.scoring.batch_size=-1"], "trainer.scoring.batch_size"),
    (["trainer.warmup_steps=-1"], "trainer.warmup_steps"),
    (["trainer.warmup_fraction=1.0"], "trainer.warmup_fraction"),
    (["trainer.label_smoothing=nan"], "trainer.label_smoothing"),
    (["trainer.proxy_epochs=0"], "trainer.proxy_epochs"),
    (["trainer.target_iterations=0"], "trainer.target_iterations"),
    (["trainer.target_epochs=5"], "trainer.target_iterations"),  # both budgets set
    (["trainer.precision=17"], "trainer.precision"),
    (["trainer.augment=maybe"], "trainer.augment"),
    (["+trainer.lrr=0.1"], "lrr"),
    (["selector.prune_rate=nan"], "selector.prune_rate"),
    (["dataset.train_subset=0"], "dataset.train_subset"),
    (["dataset.subset_seed=-3"], "dataset.subset_seed"),
    (["model.kwargs.width=0"], "model.kwargs.width"),
    (["method=tdds", "trainer.proxy_epochs=3"], "scorer.trajectory_len"),
    # combinations: embeddings exist only under protocol=elfs; UNSEEN needs a model-based scorer
    (["scorer=prototypicality"], "protocol=elfs"),
    (["selector=d2"], "protocol=elfs"),
    (["protocol=unseen", "selector=d2"], "protocol=elfs"),
    (["protocol=unseen", "scorer=tdds"], "logits"),
    (["protocol=unseen", "scorer=random"], "uses no model"),
    (["protocol=unseen", "scorer=prototypicality"], "protocol=elfs"),
    (["protocol=unseen", "protocol.labels=pseudo"], "protocol.labels"),
    (["protocol=unseen", "protocol.initial_fraction=0"], "protocol.initial_fraction"),
    (["protocol=unseen", "protocol.batched=true", "trainer.engine=lightning"], "protocol.batched"),
    (["protocol=unseen", "protocol.repeats=2", "seed=4294967295"], "protocol.repeats"),
    (["protocol=elfs", "protocol.beta_grid=[]"], "protocol.beta_grid"),
    (
        ["method=elfs", "protocol.beta_grid=[0.6]", "selector.prune_rate=0.5"],
        "protocol.beta_grid",
    ),
    (["protocol=elfs", "protocol.holdout_fraction=1.5"], "protocol.holdout_fraction"),
    (["protocol=elfs", "protocol.search_iterations=0"], "protocol.search_iterations"),
    (["protocol=elfs", "encoder.dim=0"], "encoder.dim"),
    (["protocol=elfs", "encoder=dino_vitb16"], "encoder.weights"),
    (
        ["protocol=elfs", "encoder=dino_vitb16", "encoder.weights=/nonexistent.pth"],
        "encoder.weights",
    ),
    (["protocol=elfs", "clustering.n_init=0"], "clustering.n_init"),
]
DATA_CASES = [
    (["protocol=unseen", "protocol.folds=500"], "protocol.folds"),
    (["protocol=unseen", "protocol.stages=600", "selector.prune_rate=0.9"], "protocol.stages"),
    (["protocol=elfs", "clustering.num_clusters=5000"], "clustering.num_clusters"),
    (["selector.class_balanced=true", "selector.prune_rate=0.999"], "class_balanced"),
]


def _no_artifact_anywhere(tmp_path):
    store = tmp_path / "outputs" / "store"
    built = [p for p in store.rglob("*") if p.is_file()] if store.exists() else []
    assert built == [], built
    assert not (tmp_path / "run" / "results.json").exists()


def _refuse(name):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} was reached: the check came too late")

    return refuse


@pytest.mark.parametrize("overrides, key", CONFIG_CASES, ids=[" ".join(c[0]) for c in CONFIG_CASES])
def test_bad_config_is_refused_before_the_data_is_loaded(
    make_cfg, tmp_path, monkeypatch, overrides, key
):
    import coreset_lab.run.pipeline as pipeline
    from coreset_lab.errors import UserError

    monkeypatch.setattr(pipeline, "build_dataset", _refuse("build_dataset"))
    cfg, choices = make_cfg(*FAST, *overrides)
    with pytest.raises(UserError, match=re.escape(key)) as err:
        pipeline.run(cfg, choices)
    assert "\n" not in str(err.value)
    _no_artifact_anywhere(tmp_path)


@pytest.mark.parametrize("overrides, key", DATA_CASES, ids=[" ".join(c[0]) for c in DATA_CASES])
def test_bad_config_for_the_data_is_refused_before_any_training(
    make_cfg, tmp_path, monkeypatch, overrides, key
):
    import coreset_lab.run.pipeline as pipeline
    from coreset_lab.errors import UserError

    monkeypatch.setattr(pipeline, "RunContext", _refuse("RunContext"))
    cfg, choices = make_cfg(*FAST, *overrides)
    with pytest.raises(UserError, match=re.escape(key)):
        pipeline.run(cfg, choices)
    _no_artifact_anywhere(tmp_path)


def test_a_store_dir_that_is_a_file_is_refused(make_cfg, tmp_path, monkeypatch):
    import coreset_lab.run.pipeline as pipeline
    from coreset_lab.errors import UserError

    monkeypatch.setattr(pipeline, "build_dataset", _refuse("build_dataset"))
    (tmp_path / "a_file").write_text("not a directory")
    for store in (tmp_path / "a_file", tmp_path / "a_file" / "store"):
        cfg, choices = make_cfg(*FAST, f"paths.store_dir={store}")
        with pytest.raises(UserError, match="paths.store_dir"):
            pipeline.run(cfg, choices)
    assert (tmp_path / "a_file").read_text() == "not a directory"


def test_batched_unseen_in_bf16_on_a_gpu_is_refused(make_cfg, monkeypatch):
    """The vmapped group fails in bf16 on CUDA (measured on an H200): refused before any work;
    fp32 and the CPU stay allowed."""
    import torch

    from coreset_lab.errors import UserError
    from coreset_lab.run.checks import check_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    batched = ["protocol=unseen", "scorer=margin", "protocol.batched=true"]
    with pytest.raises(UserError, match="cannot train in bf16 on a GPU"):
        check_config(make_cfg(*batched)[0])
    check_config(make_cfg(*batched, "trainer.precision=32-true")[0])
    check_config(make_cfg(*batched, "trainer.accelerator=cpu")[0])
