"""`coreset_lab.select(...)`: the CLI's run as a function, for notebooks and users' pipelines.

    import coreset_lab
    core = coreset_lab.select("/data/pool", method="elfs", prune_rate=0.9,
                              **{"clustering.num_clusters": 10})
    core.indices, core.files, core.scores, core.info["method"]

It composes the same Hydra config as `coreset-lab` (conf/, the same defaults, every option a
keyword: `encoder="dino_vitb16"` picks a group option, `**{"trainer.proxy_epochs": 20}` sets a
key, `overrides=[...]` takes command-line strings), runs the same pipeline (the same refusals
as UserError, the same artifact store, a run directory with the same files) and returns what it
selected. `data` is

* a registered dataset name (`"digits"`, `"cifar10"`; its options as `dataset.root=...`),
* a path: a folder (every image below it: `unlabelled_folder`), a `.txt` / `.csv` list of image
  paths (`path_list`), a `.npy` / `.npz` of images (`arrays`),
* numpy arrays: images, `(images, labels)`, or a dict with `images` and optionally `labels`,
  `test_images`, `test_labels` (see data/arrays.py).

Arrays (and `embeddings=` given as an array) are written once to `<paths.store_dir>/inputs/`,
named by their content's hash, so that the run's config names a file, as a CLI run's does, and a
second call with the same arrays reuses every artifact.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.files import temp_path

log = logging.getLogger("coreset_lab")

LIST_SUFFIXES = (".txt", ".csv", ".lst")
ARRAY_SUFFIXES = (".npy", ".npz")
PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:+\-]+$")  # needs no quotes in a Hydra override


@dataclass
class Coreset:
    indices: np.ndarray  # kept samples: sorted indices into the dataset as given
    scores: np.ndarray | None  # [N] per train sample (of the subset, if one was drawn)
    files: list[str] | None  # the kept samples' files, for data read from files
    info: dict  # results.json: method, sizes, accuracy (None: selection only), costs, ...
    run_dir: Path  # config.yaml, coreset.csv, contact_sheet.png, the log, ...

    def __len__(self) -> int:
        return len(self.indices)


def select(
    data,
    method: str | None = "elfs",
    prune_rate: float | None = None,
    *,
    embeddings=None,
    overrides: Sequence[str] = (),
    **options,
) -> Coreset:
    """Select a coreset of `data` with `method` (a conf/method preset; None: the config's
    defaults) at `prune_rate` (None: the selector's default). See the module docstring."""
    from coreset_lab.run.config import compose_config
    from coreset_lab.run.pipeline import run
    from coreset_lab.runtime import quiet_third_party

    given = [_override(k, v) for k, v in options.items()] + list(overrides)
    wanted = _method_overrides(method, prune_rate)
    named = any(o.split("=", 1)[0].lstrip("+~") == "task_name" for o in given)
    wanted += [] if named or "task_name" in options else ["task_name=select"]  # the run dir's name
    if _needs_inputs_dir(data, embeddings):
        inputs = Path(str(compose_config([*wanted, *given])[0].paths.store_dir)) / "inputs"
    else:
        inputs = None
    wanted += data_overrides(data, inputs) + embedding_overrides(embeddings, inputs)
    cfg, choices = compose_config([*wanted, *given], job_name="select")
    quiet_third_party()
    run_dir = Path(str(cfg.paths.output_dir))
    with _logged_to(run_dir / "select.log"):
        log.info("coreset_lab.select: run directory %s (its log: select.log)", run_dir)
        run(cfg, choices)
    return read_coreset(run_dir)


def _method_overrides(method: str | None, prune_rate: float | None) -> list[str]:
    out = [] if method is None else [_override("method", method)]
    return out + ([] if prune_rate is None else [_override("selector.prune_rate", prune_rate)])


def _override(key: str, value) -> str:
    """key=value in Hydra's override syntax."""
    return f"{key}={_value(value)}"


def _value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        return repr(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_value(v) for v in value) + "]"
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = str(value)
    if PLAIN_VALUE.match(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- data and embeddings ----------------------------------------------------------------------


def _is_arrays(data) -> bool:
    return isinstance(data, np.ndarray | tuple | dict)


def _needs_inputs_dir(data, embeddings) -> bool:
    return _is_arrays(data) or isinstance(embeddings, np.ndarray)


def data_overrides(data, inputs: Path | None) -> list[str]:
    """The dataset overrides `data` stands for (see the module docstring)."""
    if isinstance(data, str) and _registered(data):
        return [_override("dataset", _registered(data))]
    if isinstance(data, str | os.PathLike):
        return _path_overrides(Path(data).expanduser().resolve())
    if _is_arrays(data):
        return [_override("dataset", "arrays"), _override("dataset.path", _save(data, inputs))]
    raise UserError(
        f"data must be a dataset name, a path or numpy arrays, got {type(data).__name__}"
    )


def _registered(name: str) -> str | None:
    from coreset_lab.data.registry import canonical_name

    try:
        return canonical_name(name)
    except UserError:
        return None


def _path_overrides(path: Path) -> list[str]:
    if path.is_dir():
        return [_override("dataset", "unlabelled_folder"), _override("dataset.root", path)]
    if not path.is_file():
        raise UserError(f"data={path}: no such file or folder, and not a dataset name")
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return [_override("dataset", "arrays"), _override("dataset.path", path)]
    if suffix in LIST_SUFFIXES:
        return [_override("dataset", "path_list"), _override("dataset.path", path)]
    raise UserError(
        f"data={path}: a folder of images, a list of image paths ({', '.join(LIST_SUFFIXES)}) "
        f"or numpy arrays ({', '.join(ARRAY_SUFFIXES)}) is expected"
    )


def embedding_overrides(embeddings, inputs: Path | None) -> list[str]:
    if embeddings is None:
        return []
    if isinstance(embeddings, np.ndarray):
        if embeddings.dtype not in (np.float16, np.float32):
            embeddings = embeddings.astype(np.float32)
        embeddings = _save({"embeddings": embeddings}, inputs, ".npy")
    return [_override("encoder", "precomputed"), _override("encoder.path", embeddings)]


def _as_dict(data) -> dict[str, np.ndarray]:
    if isinstance(data, np.ndarray):
        return {"images": data}
    if isinstance(data, tuple):
        if len(data) != 2:
            raise UserError("data as a tuple must be (images, labels)")
        return {"images": data[0], "labels": data[1]}
    return {str(k): v for k, v in data.items()}


def _save(data, inputs: Path, suffix: str = ".npz") -> Path:
    """Write the arrays once, named by their content: the same arrays, the same file."""
    arrays = {k: np.ascontiguousarray(v) for k, v in _as_dict(data).items()}
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(f"{key}:{arrays[key].dtype}:{arrays[key].shape}".encode())
        h.update(memoryview(arrays[key]).cast("B"))
    path = inputs / f"{h.hexdigest()[:20]}{suffix}"
    if path.exists():
        return path
    inputs.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with open(tmp, "wb") as fh:
        if suffix == ".npy":
            np.save(fh, next(iter(arrays.values())))
        else:
            np.savez(fh, **arrays)
    os.replace(tmp, path)
    return path


# --- running and reading back ------------------------------------------------------------------


class _logged_to:
    """The run's log in its directory, as a CLI run has one (INFO and up, this call only)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(self.path)
        fmt = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
        self.handler.setFormatter(logging.Formatter(fmt))
        self.handlers = [self.handler]
        if not (log.handlers or logging.getLogger().handlers):
            # Nobody set up logging (a notebook, a plain script): show the progress lines too.
            screen = logging.StreamHandler()
            screen.setFormatter(logging.Formatter("[coreset_lab] %(message)s"))
            self.handlers.append(screen)
        self.level = log.level
        log.setLevel(logging.INFO)
        for handler in self.handlers:
            log.addHandler(handler)

    def __exit__(self, *exc) -> None:
        for handler in self.handlers:
            log.removeHandler(handler)
        log.setLevel(self.level)
        self.handler.close()


def read_coreset(run_dir: Path) -> Coreset:
    import json

    info = json.loads((run_dir / "results.json").read_text())
    with open(run_dir / info["outputs"]["coreset_csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    scores = run_dir / "scores.npy"
    return Coreset(
        indices=np.array([int(r["index"]) for r in rows], dtype=np.int64),
        scores=np.load(scores) if scores.exists() else None,
        files=[r["path"] for r in rows] if rows and "path" in rows[0] else None,
        info=info,
        run_dir=run_dir,
    )
