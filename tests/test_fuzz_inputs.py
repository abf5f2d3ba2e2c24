"""Bad input, fuzzed (issue #20, section 2): one clear line and a non-zero exit (2) before any work
starts, never a traceback, and nothing already computed is lost or altered.

1. Config values, in process (`test_config_values`). For the composed default config (its top-level
   values) and every option of the groups dataset, model, trainer, scorer, selector, protocol,
   encoder and clustering, every key of the group's composed node (nested nodes too, and the nested
   nodes themselves) gets every value of FUZZ: wrong types (text, a bool, a list, null) and out-of-
   range numbers (negative, zero, a fraction, NaN, inf, huge). `check_config` must accept the value
   or raise one UserError on one line that names the key; any other exception is a bug of the code
   under test, and so is accepting what no option can mean (see `wrongly_accepted`: text, a bool, a
   list, NaN or inf where a number is due, anything but a bool where a bool is due). An accepted
   dataset value is also loaded. The table is generated from the configs, so a new option or key is
   fuzzed without being listed here. The override is applied to the composed config as Hydra applies
   it (`OmegaConf.update` of a copy: composing each of the 4,790 cases would take minutes);
   `test_an_update_is_what_composing_gives` checks on a sample that both give the same config and
   the same outcome. `test_an_added_unknown_option_is_named` adds a key the class does not take.
2. Accepted odd values run (`test_accepted_odd_values_run`): a sample of values `check_config`
   accepts runs the pipeline on tiny digits and ends with status ok or a UserError.
3. Input kinds (`test_bad_files_*`): files generated in tmp_path (an empty image, a text file named
   .png, an unreadable file (skipped as root, who reads it anyway), a path list naming a missing
   file, .npz arrays with wrong keys, dtypes or ndim, embeddings with the wrong row count, 1-D or of
   object dtype, an ids file with fewer rows, a store directory that is a file) are refused by a
   UserError on one line before any model trains; a truncated results.json is skipped by
   scripts/claims.py with one warning line; a few go through the CLI (exit 2, one `coreset-lab:
   error:` line on stderr, no traceback, the store's files unchanged).

Counts (`pytest -s tests/test_fuzz_inputs.py` prints them, from `test_summary`):

* config values: 479 keys over 63 group options x 10 values = 4,790 cases
  (`test_config_values_of_every_option`, slow tier): 779 accepted, 4,011 refused, 0 failures.
  The fast tier (`test_config_values`) fuzzes each key the first time its group has it with that
  default: 2,160 cases, 357 accepted, 1,803 refused. Before the fixes of this change 112 of those
  2,160 failed: 72 crashed (AttributeError / TypeError / ValueError on model.kwargs,
  trainer.scoring, clustering.method), 56 were accepted though no option can mean them (cache=0,
  encoder.strict=abc, encoder.lr=nan, encoder.image_size=abc, ...), 2 named no key (scorer.init=
  [1, 2]: "unhashable type"), 2 crashed when the data loaded (dataset.image_size=null on pools).
* an added option the class does not take (`+scorer.bogus_option=1`), for each of the 24
  scorer, selector and protocol options (`test_an_added_unknown_option_is_named`): refused
  naming `scorer.bogus_option`; all 24 failed before ("AUM() takes no arguments").
* accepted odd values run: 12 runs, 11 ok, 1 refused on the data (encoder.dim above the pixel
  count); selector.strata=10**12 was killed for memory before (a list of one array a stratum).
* input kinds: 34 in process, all refused on one line before any model trains; 2 through
  scripts/claims.py (half a results.json skipped with a warning line, half a regime.json refused
  with one line and exit 2); 4 through the CLI (1 in the fast tier), exit 2 and one line. 8
  failed before: object-dtype .npz members (arrays images and labels, embeddings, ids), an
  unreadable dataset.labels file, the truncated results.json, and through the CLI the object-dtype
  embeddings and model.kwargs=abc (the regime.json case was added with its fix).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict

from coreset_lab.errors import UserError
from coreset_lab.run.checks import check_config
from coreset_lab.run.config import CONF_DIR, compose_config
from tests.conftest import run_cli, subprocess_env
from tests.datagen import make_image_folder

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("dataset", "model", "trainer", "scorer", "selector", "protocol", "encoder", "clustering")
TRAIN = [
    "trainer=debug",
    "trainer.proxy_epochs=1",
    "trainer.target_iterations=3",
    "model.kwargs.width=8",
    "logger=none",
]
TINY = ["dataset=digits", "dataset.train_subset=100", *TRAIN]
# One value of each wrong kind; the names are the case ids.
FUZZ = {
    "text": "abc",
    "bool": True,
    "list": [1, 2],
    "null": None,
    "negative": -1,
    "zero": 0,
    "fraction": 0.5,
    "nan": math.nan,
    "inf": math.inf,
    "huge": 10**12,
}
# Top-level keys of the composed config that are not groups; paths and logger name files and a
# tracker, not values of the computation.
NOT_FUZZED_TOP = set(GROUPS) | {"paths", "logger", "tuning"}
OUTCOMES: Counter = Counter()  # (category, outcome) -> cases, for the summary


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


# --- the fixtures every base config needs ---------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Valid files for the options that need one (their own content is fuzzed in section 3)."""
    tmp = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    np.savez(tmp / "arrays.npz", images=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
             labels=np.arange(40) % 4)  # fmt: skip
    pngs = []
    from PIL import Image

    (tmp / "pool").mkdir()
    for i in range(12):
        f = tmp / "pool" / f"img_{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(f)
        pngs.append(str(f))
    (tmp / "list.txt").write_text("\n".join(pngs) + "\n")
    (tmp / "weights.pth").write_bytes(b"weights")  # exists: check_config reads no weights
    np.save(tmp / "emb.npy", rng.normal(size=(1347, 4)).astype(np.float32))
    return {
        "root": tmp,
        "arrays": tmp / "arrays.npz",
        "pool": tmp / "pool",
        "list": tmp / "list.txt",
        "weights": tmp / "weights.pth",
        "emb": tmp / "emb.npy",
    }


def base_overrides(group: str, option: str, f: dict[str, Path]) -> list[str]:
    """`group=option` with what that option needs to pass check_config on its defaults."""
    if group == "top":
        return []
    out = [f"{group}={option}"]
    if group == "dataset":
        out += {
            "arrays": [f"dataset.path={f['arrays']}"],
            "path_list": [f"dataset.path={f['list']}", "method=random"],
            "unlabelled_folder": [f"dataset.root={f['pool']}", "method=random"],
        }.get(option, [])
    if group in ("encoder", "clustering"):
        out.append("protocol=elfs")
    if (group, option) == ("protocol", "badge"):  # it reads no scorer: its preset's random one
        out += ["scorer=random", "selector=random"]
    if group == "encoder":
        kind = OmegaConf.load(Path(CONF_DIR) / "encoder" / f"{option}.yaml").get("kind")
        out += {"precomputed": [f"encoder.path={f['emb']}"]}.get(kind, [])
        if kind in ("timm", "torchvision"):
            out.append(f"encoder.weights={f['weights']}")
    if group in ("scorer", "selector"):
        target = OmegaConf.load(Path(CONF_DIR) / group / f"{option}.yaml")["_target_"]
        if "embeddings" in get_class(target).needs:  # only protocol=elfs computes them
            out.append("protocol=elfs")
    if group == "dataset" and option in ("cifar10", "cifar100", "stl10", "fashion_mnist"):
        out.append(f"dataset.root={f['root'] / 'no_data_here'}")  # fails fast when loaded
    return out


def compose(f: dict[str, Path], *overrides: str) -> tuple[DictConfig, dict]:
    paths = [f"paths.root_dir={f['root']}", f"paths.output_dir={f['root']}/run", "logger=none"]
    return compose_config([*paths, *overrides])


# --- 1. config values -----------------------------------------------------------------------------


def keys_of(node: DictConfig, prefix: str) -> list[str]:
    """Every key below `node` (dotted, from `prefix`), a nested node before its own keys; not
    `_target_` (which class to build) and not a node that is another group (protocol.encoder)."""
    out = []
    for key in node:
        full = f"{prefix}.{key}" if prefix else str(key)
        if key == "_target_":
            continue
        if OmegaConf.is_missing(node, key):
            out.append(full)
            continue
        child = node[key]
        if OmegaConf.is_interpolation(node, key) and isinstance(child, DictConfig):
            continue
        out.append(full)
        if isinstance(child, DictConfig):
            out += keys_of(child, full)
    return out


def fuzzed_keys(group: str, cfg: DictConfig) -> list[str]:
    if group == "top":
        return [str(k) for k in cfg if k not in NOT_FUZZED_TOP]
    return keys_of(cfg[group], group)


def with_value(base: DictConfig, key: str, value: object) -> DictConfig:
    """`base` with `key=value`, as the override `key=<value>` sets it."""
    cfg = copy.deepcopy(base)
    OmegaConf.update(cfg, key, copy.deepcopy(value), merge=False)
    return cfg


def names_key(message: str, key: str) -> bool:
    return key in message


def outcome(cfg: DictConfig, key: str, choices: dict | None = None) -> tuple[str, str]:
    """accepted | refused (one line naming the key) | a failure: crash, multi-line, unnamed.
    What the run does with the config before any work: its checks, then its identity."""
    from coreset_lab.run.identity import identify

    try:
        identify(cfg, choices, check_config(cfg))
    except UserError as err:
        text = str(err)
        if "\n" in text.strip():
            return "multi-line", text
        return ("refused" if names_key(text, key) else "unnamed"), text
    except Exception as err:  # noqa: BLE001  (any other type is the failure being looked for)
        return "crash", f"{type(err).__name__}: {err}"
    return "accepted", ""


def loads_or_refuses(cfg: DictConfig) -> tuple[str, str]:
    """An accepted dataset value, loaded (the data roots of the base configs do not exist or are
    tiny, so this is fast): it loads, or one UserError line."""
    from coreset_lab.data import build_dataset

    try:
        build_dataset(**cfg.dataset)
    except UserError as err:
        return ("multi-line" if "\n" in str(err).strip() else "accepted"), str(err)
    except Exception as err:  # noqa: BLE001
        return "crash when loading", f"{type(err).__name__}: {err}"
    return "accepted", ""


CASES = [("top", "default")] + [(g, o) for g in GROUPS for o in options(g)]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# trainer.scoring.<option>: null means the trainer's own value (conf/trainer/scoring/none.yaml).
INHERITS = "trainer.scoring."


def wrongly_accepted(key: str, default: object, name: str) -> bool:
    """An accepted value no option can mean: text, a bool, a list, NaN or inf where the default
    is a number, anything but a bool where it is a bool (a null in trainer.scoring means the
    trainer's own value: see INHERITS)."""
    if key.startswith(INHERITS) and name == "null":
        return False
    if _number(default):
        return name in ("text", "bool", "list", "nan", "inf")
    if isinstance(default, bool):
        return name != "bool"
    return False


@pytest.fixture(scope="module")
def bases(files) -> dict[tuple[str, str], tuple[DictConfig, dict]]:
    """The composed base config (and group choices) of every case, composed once."""
    out = {case: compose(files, *base_overrides(*case, files)) for case in CASES}
    GlobalHydra.instance().clear()
    return out


def first_seen(bases) -> set[tuple[str, str, str]]:
    """(group=option, key, default) of each key the first time its group has it with that
    default (CASES order): the fast tier fuzzes those; trainer=paper's trainer.lr is another
    default than trainer=default's, its trainer.nesterov the same."""
    seen: dict[tuple[str, str], str] = {}
    for (group, option), (base, _) in bases.items():
        for key in fuzzed_keys(group, base):
            raw = repr(OmegaConf.select(base, key, throw_on_missing=False))
            seen.setdefault((key, raw), f"{group}={option}")
    return {(case, key, raw) for (key, raw), case in seen.items()}


def fuzz_option(bases, group: str, option: str, only_first: bool) -> list[str]:
    """The failures of every (key, value) of one option's table; counted in OUTCOMES."""
    base, choices = bases[group, option]
    assert outcome(base, "", choices)[0] == "accepted", outcome(base, "", choices)
    firsts = first_seen(bases) if only_first else None
    failures = []
    for key in fuzzed_keys(group, base):
        default = OmegaConf.select(base, key, throw_on_missing=False)
        if firsts is not None and (f"{group}={option}", key, repr(default)) not in firsts:
            OUTCOMES["config", "same key and default fuzzed in another option"] += len(FUZZ)
            continue
        for name, value in FUZZ.items():
            cfg = with_value(base, key, value)
            result, text = outcome(cfg, key, choices)
            if result == "accepted" and wrongly_accepted(key, default, name):
                result = "wrongly accepted"
            elif result == "accepted" and group == "dataset" and key != "dataset.download":
                result, text = loads_or_refuses(cfg)
            OUTCOMES["config", result] += 1
            if result not in ("accepted", "refused"):
                failures.append(f"{key}={name}: {result}: {text}")
    GlobalHydra.instance().clear()
    return failures


@pytest.mark.parametrize("group, option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_config_values(bases, group, option):
    """Each key the first time its group has it with that default (the slow tier: every key of
    every option)."""
    failures = fuzz_option(bases, group, option, only_first=True)
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("group, option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_config_values_of_every_option(bases, group, option):
    failures = fuzz_option(bases, group, option, only_first=False)
    assert not failures, "\n".join(failures)


BUILT = ("scorer", "selector", "protocol")  # the groups whose node is a class's arguments


@pytest.mark.parametrize("group, option", [c for c in CASES if c[0] in BUILT],
                         ids=[f"{g}={o}" for g, o in CASES if g in BUILT])  # fmt: skip
def test_an_added_unknown_option_is_named(bases, group, option):
    """`+scorer.bogus=1` passes Hydra (it adds a key) and is refused by the class, naming it."""
    base, choices = bases[group, option]
    cfg = copy.deepcopy(base)
    with open_dict(cfg):
        OmegaConf.update(cfg, f"{group}.bogus_option", 1, merge=False, force_add=True)
    result, text = outcome(cfg, f"{group}.bogus_option", choices)
    OUTCOMES["config", f"unknown option {result}"] += 1
    assert result == "refused", text


def override_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


SAMPLE_EVERY = 151  # a deterministic sample: every 151st case of the table, over all of it


def sampled_cases(bases) -> list[tuple[list[str], DictConfig, str, object]]:
    out, i = [], 0
    for (group, option), (base, _) in bases.items():
        for key in fuzzed_keys(group, base):
            if isinstance(OmegaConf.select(base, key, throw_on_missing=False), DictConfig):
                i += len(FUZZ)
                continue  # a whole node: Hydra merges a dict override into it
            for value in FUZZ.values():
                if i % SAMPLE_EVERY == 0:
                    out.append((group, option, base, key, value))
                i += 1
    return out


def test_an_update_is_what_composing_gives(files, bases):
    """The fuzz table applies values with OmegaConf.update; on a sample, composing the override
    `key=value` gives the same config and the same outcome."""
    checked = 0
    for group, option, base, key, value in sampled_cases(bases):
        expected = with_value(base, key, value)
        base_args = base_overrides(group, option, files)
        try:
            composed, choices = compose(files, *base_args, f"{key}={override_text(value)}")
        except UserError as err:  # Hydra refused the override itself: one line naming the key
            assert "\n" not in str(err) and key.rsplit(".", 1)[-1] in str(err), str(err)
            continue
        same = OmegaConf.to_container(composed, resolve=True) == OmegaConf.to_container(
            expected, resolve=True
        )
        nan_case = isinstance(value, float) and math.isnan(value)  # NaN != NaN
        assert same or nan_case, (key, value)
        got = outcome(composed, key, choices)[0]
        assert got == outcome(expected, key, choices)[0], (key, value)
        checked += 1
    GlobalHydra.instance().clear()
    assert checked >= 30


# --- 2. accepted odd values run ---------------------------------------------------------------

# Each accepted by check_config (about a second each on tiny digits).
ODD_ACCEPTED = [
    ["trainer.batch_size=1000000000000"],
    ["protocol=unseen", "scorer=margin", "protocol.folds=2"],
    ["selector=ccs", "selector.strata=1000000000000"],  # looped over every stratum before
    ["protocol=elfs", "clustering.n_init=1", "encoder.dim=1000000000000"],
    ["selector.prune_rate=0"],
    ["selector.prune_rate=0.99"],
    ["trainer.warmup_steps=1000000000000"],
    ["trainer.checkpoint_every_steps=1"],
    ["scorer.epochs=1000000000000"],
    ["dataset.train_subset=1000000000000"],
    ["seed=4294967295"],
    ["trainer.weight_decay=1000000000000"],
]


@pytest.mark.parametrize("overrides", ODD_ACCEPTED, ids=[" ".join(o) for o in ODD_ACCEPTED])
def test_accepted_odd_values_run(make_cfg, overrides):
    import coreset_lab.run.pipeline as pipeline

    cfg, choices = make_cfg(*TINY, *overrides)
    check_config(cfg)  # accepted: else the case belongs to section 1
    try:
        result = pipeline.run(cfg, choices)
    except UserError as err:
        OUTCOMES["odd accepted", "refused on the data"] += 1
        assert "\n" not in str(err).strip(), str(err)
        return
    OUTCOMES["odd accepted", "ran"] += 1
    assert result["status"] == "ok"


# --- 3. input kinds -------------------------------------------------------------------------------


def refused_before_training(make_cfg, monkeypatch, *overrides: str) -> str:
    """The run's UserError (one line), raised before any model trains or artifact is built."""
    import coreset_lab.run.pipeline as pipeline

    def too_late(*args, **kwargs):
        raise AssertionError("RunContext was reached: the input was not refused before any work")

    monkeypatch.setattr(pipeline, "RunContext", too_late)
    tiny = TRAIN if any(o.startswith("dataset=") for o in overrides) else TINY
    cfg, choices = make_cfg(*tiny, *overrides)
    with pytest.raises(UserError) as err:
        pipeline.run(cfg, choices)
    text = str(err.value)
    assert "\n" not in text.strip(), text
    OUTCOMES["input kinds", "refused"] += 1
    return text


def _png(path: Path, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(path)


def _pool(tmp: Path, n: int = 12) -> Path:
    for i in range(n):
        _png(tmp / "pool" / f"img_{i:02d}.png", i)
    return tmp / "pool"


POOL_RUN = ["method=random", "evaluate=false"]


def test_bad_files_in_an_image_pool(make_cfg, monkeypatch, tmp_path):
    pool = _pool(tmp_path)
    (pool / "empty.png").write_bytes(b"")
    text = refused_before_training(
        make_cfg, monkeypatch, "dataset=unlabelled_folder", f"dataset.root={pool}", *POOL_RUN
    )
    assert "empty.png" in text
    (pool / "empty.png").write_text("this is text, not a PNG")
    text = refused_before_training(
        make_cfg, monkeypatch, "dataset=unlabelled_folder", f"dataset.root={pool}", *POOL_RUN
    )
    assert "empty.png" in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_image_in_a_pool(make_cfg, monkeypatch, tmp_path):
    pool = _pool(tmp_path)
    locked = pool / "img_03.png"
    locked.chmod(0)
    try:
        text = refused_before_training(
            make_cfg, monkeypatch, "dataset=unlabelled_folder", f"dataset.root={pool}", *POOL_RUN
        )
    finally:
        locked.chmod(0o644)
    assert "img_03.png" in text


def test_a_path_list_naming_a_missing_file(make_cfg, monkeypatch, tmp_path):
    pool = _pool(tmp_path)
    listed = sorted(str(p) for p in pool.iterdir()) + [str(pool / "gone.png")]
    (tmp_path / "list.txt").write_text("\n".join(listed) + "\n")
    args = ["dataset=path_list", f"dataset.path={tmp_path / 'list.txt'}", *POOL_RUN]
    assert "gone.png" in refused_before_training(make_cfg, monkeypatch, *args)


def _arrays(**arrays) -> dict:
    return arrays


rng0 = np.random.default_rng(0)
GOOD_X = rng0.integers(0, 256, (40, 8, 8), dtype=np.uint8)
GOOD_Y = np.arange(40) % 4
BAD_ARRAYS = {
    "no-images-key": _arrays(pixels=GOOD_X, labels=GOOD_Y),
    "images-of-object-dtype": _arrays(images=np.array([GOOD_X[0], "x"], dtype=object)),
    "images-of-int64": _arrays(images=GOOD_X.astype(np.int64), labels=GOOD_Y),
    "images-of-text": _arrays(images=np.array(["a", "b"]), labels=np.arange(2)),
    "images-1-d": _arrays(images=np.arange(40, dtype=np.uint8), labels=GOOD_Y),
    "images-5-d": _arrays(images=GOOD_X[:, None, None], labels=GOOD_Y),
    "images-not-square": _arrays(images=GOOD_X[:, :, :6], labels=GOOD_Y),
    "images-empty": _arrays(images=GOOD_X[:0], labels=GOOD_Y[:0]),
    "float-images-above-1": _arrays(images=GOOD_X.astype(np.float32), labels=GOOD_Y),
    "labels-of-float": _arrays(images=GOOD_X, labels=GOOD_Y.astype(np.float32)),
    "labels-of-object-dtype": _arrays(images=GOOD_X, labels=np.array([1, "a"], dtype=object)),
    "labels-2-d": _arrays(images=GOOD_X, labels=GOOD_Y[:, None]),
    "labels-fewer": _arrays(images=GOOD_X, labels=GOOD_Y[:30]),
    "labels-negative": _arrays(images=GOOD_X, labels=GOOD_Y - 2),
    "test-images-without-labels": _arrays(images=GOOD_X, labels=GOOD_Y, test_images=GOOD_X),
    "test-images-of-another-size": _arrays(
        images=GOOD_X, labels=GOOD_Y, test_images=GOOD_X[:, :4, :4], test_labels=GOOD_Y
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_bad_files_arrays(make_cfg, monkeypatch, tmp_path, case):
    path = tmp_path / "arrays.npz"
    np.savez(path, **BAD_ARRAYS[case])
    refused_before_training(make_cfg, monkeypatch, "dataset=arrays", f"dataset.path={path}",
                            "method=random", "evaluate=false")  # fmt: skip


def test_bad_files_arrays_not_numpy_and_a_bad_labels_file(make_cfg, monkeypatch, tmp_path):
    (tmp_path / "images.npy").write_text("not numpy")
    args = ["dataset=arrays", f"dataset.path={tmp_path / 'images.npy'}", "method=random"]
    assert "dataset.path" in refused_before_training(make_cfg, monkeypatch, *args)
    np.save(tmp_path / "images.npy", GOOD_X)
    (tmp_path / "labels.npy").write_text("not numpy either")
    args = [*args, f"dataset.labels={tmp_path / 'labels.npy'}"]
    assert "dataset.labels" in refused_before_training(make_cfg, monkeypatch, *args)
    np.save(tmp_path / "labels.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    assert "dataset.labels" in refused_before_training(make_cfg, monkeypatch, *args)


N_TINY = 100  # dataset.train_subset of TINY
BAD_EMBEDDINGS = {
    "wrong-row-count": lambda p: np.save(p, np.ones((N_TINY + 1, 4), np.float32)),
    "one-d": lambda p: np.save(p, np.ones(N_TINY, np.float32)),
    "object-dtype-npy": lambda p: np.save(p, np.array([[1.0], ["a"]], dtype=object)),
    "int-dtype": lambda p: np.save(p, np.ones((N_TINY, 4), np.int64)),
    "nan-rows": lambda p: np.save(p, np.full((N_TINY, 4), np.nan, np.float32)),
    "text-file": lambda p: p.write_text("1,2,3\n"),
    "npz-without-embeddings": lambda p: np.savez(p, x=np.ones((N_TINY, 4), np.float32)),
    "npz-object-embeddings": lambda p: np.savez(p, embeddings=np.array([[1.0], ["a"]], object)),
    "npz-object-ids": lambda p: np.savez(
        p, embeddings=np.ones((N_TINY, 4), np.float32), ids=np.array([1, "a"], dtype=object)
    ),
    "npz-fewer-ids": lambda p: np.savez(
        p, embeddings=np.ones((N_TINY, 4), np.float32), ids=np.arange(N_TINY - 1)
    ),
}


@pytest.mark.parametrize("case", list(BAD_EMBEDDINGS))
def test_bad_files_precomputed_embeddings(make_cfg, monkeypatch, tmp_path, case):
    path = tmp_path / ("emb.npz" if case.startswith("npz") else "emb.npy")
    BAD_EMBEDDINGS[case](path)
    refused_before_training(make_cfg, monkeypatch, "method=d2", "encoder=precomputed",
                            f"encoder.path={path}", "evaluate=false")  # fmt: skip


def test_bad_files_an_ids_file_with_fewer_rows(make_cfg, monkeypatch, tmp_path):
    np.save(tmp_path / "emb.npy", np.ones((N_TINY, 4), np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(map(str, range(N_TINY - 3))) + "\n")
    text = refused_before_training(
        make_cfg, monkeypatch, "method=d2", "encoder=precomputed",
        f"encoder.path={tmp_path / 'emb.npy'}", f"encoder.ids={tmp_path / 'ids.txt'}",
    )  # fmt: skip
    assert "ids" in text


def test_bad_files_a_store_dir_that_is_a_file(make_cfg, monkeypatch, tmp_path):
    (tmp_path / "store").write_text("a file")
    text = refused_before_training(make_cfg, monkeypatch, f"paths.store_dir={tmp_path / 'store'}")
    assert "paths.store_dir" in text
    assert (tmp_path / "store").read_text() == "a file"


def test_bad_files_a_truncated_results_json_for_the_claims_script(tmp_path):
    """A run killed while writing leaves half a results.json: the claims report skips it with
    one warning line (as the report's gather does), it does not crash on it. Half a regime.json
    (the criteria every verdict rests on) is refused with one line and exit 2."""
    root = tmp_path / "claims"
    for name, text in {"a": '{"status": "ok", "method": "random", "se', "b": ""}.items():
        (root / "table" / name).mkdir(parents=True)
        (root / "table" / name / "results.json").write_text(text)
    (root / "table" / "multirun.yaml").write_text("hydra: {}\n")
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "claims.py"), "--root", str(root), "--out",
         str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path,
        env=subprocess_env(), timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "results.json" in r.stderr
    OUTCOMES["input kinds", "skipped with a warning"] += 1
    (root / "regime").mkdir()
    (root / "regime" / "regime.json").write_text('{"criteria": [{"criterion": "pro')
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "claims.py"), "--root", str(root), "--out",
         str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path,
        env=subprocess_env(), timeout=300,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if "regime.json" in line]
    assert len(lines) == 1 and lines[0].startswith("claims.py: error: "), r.stderr[-3000:]
    OUTCOMES["input kinds", "refused"] += 1


# --- the CLI: a few representative kinds, against a store with finished artifacts --------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store holding finished artifacts (one tiny run, in process)."""
    import coreset_lab.run.pipeline as pipeline

    root = tmp_path_factory.mktemp("cli_store")
    cfg, choices = compose_config(
        [
            *TINY,
            f"paths.root_dir={root}",
            f"paths.output_dir={root}/run",
            f"paths.store_dir={root / 'store'}",
        ]  # fmt: skip
    )
    assert pipeline.run(cfg, choices)["status"] == "ok"
    GlobalHydra.instance().clear()
    return root / "store"


def fingerprint(store: Path) -> dict:
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def _zero_byte_image_folder(tmp: Path) -> list[str]:
    make_image_folder(tmp / "imgs", classes=3, per_class=4, size=16)
    (tmp / "imgs" / "train" / "n00000000" / "zero.png").write_bytes(b"")
    return ["dataset=image_folder", f"dataset.root={tmp / 'imgs'}", "dataset.image_size=16"]


def _arrays_of_wrong_ndim(tmp: Path) -> list[str]:
    np.savez(tmp / "a.npz", images=np.arange(40, dtype=np.uint8), labels=GOOD_Y)
    return ["dataset=arrays", f"dataset.path={tmp / 'a.npz'}"]


def _embeddings_of_object_dtype(tmp: Path) -> list[str]:
    np.savez(tmp / "e.npz", embeddings=np.array([[1.0], ["a"]], dtype=object))
    return ["method=d2", "encoder=precomputed", f"encoder.path={tmp / 'e.npz'}"]


def _text_where_a_number_is_due(tmp: Path) -> list[str]:
    return ["model.kwargs=abc"]


# Each CLI run costs seconds of imports: one in the fast tier, the others in the slow one.
CLI_FAST = "embeddings-of-object-dtype"
CLI_CASES = {
    "zero-byte-image": _zero_byte_image_folder,
    "arrays-of-wrong-ndim": _arrays_of_wrong_ndim,
    "embeddings-of-object-dtype": _embeddings_of_object_dtype,
    "model-kwargs-text": _text_where_a_number_is_due,
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=() if c == CLI_FAST else pytest.mark.slow) for c in CLI_CASES],
)
def test_bad_files_through_the_cli(tmp_path, store, case):
    before = fingerprint(store)
    args = CLI_CASES[case](tmp_path)
    tiny = TRAIN if any(o.startswith("dataset=") for o in args) else TINY
    r = run_cli(*tiny, *args, f"paths.store_dir={store}", f"hydra.run.dir={tmp_path / 'run'}",
                cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2, (r.stderr + r.stdout)[-3000:]
    assert "Traceback" not in r.stderr + r.stdout, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.match(r"coreset-lab: error: \S", lines[0]), r.stderr[-3000:]
    after = fingerprint(store)
    assert {p: after.get(p) for p in before} == before
    OUTCOMES["cli", "exit 2, one line"] += 1


def test_summary():
    """Prints the counts of the cases run before it in this module (pytest -s)."""
    print("\nfuzz summary:", json.dumps({f"{c}: {o}": n for (c, o), n in sorted(OUTCOMES.items())}))
