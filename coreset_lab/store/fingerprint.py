"""What an artifact's key knows about the code, the data, the files and the machine behind it.

Three questions decide whether a stored result may be reused, besides the stage's own config:

* **code**: `code_fingerprint(stage)` hashes the source of the modules that compute the stage
  (its packages and everything they import inside coreset_lab), parsed so that comments,
  docstrings and formatting do not count but any change of a statement does. Editing a selector
  does not retrain proxy models; editing the training loop does.
* **data and weights**: `data_fingerprint` hashes what was actually loaded: the uint8 tensors of
  in-memory datasets (exact, milliseconds), and for datasets read from files (ImageNet folders)
  every file's path, size and mtime plus the content of a deterministic sample of the files
  (``file_identity=full``: every byte). Sampling is only for image trees too large to read twice:
  a file the run reads whole (weights, embeddings, ids, a path list, arrays, labels: the
  FILE_KEYS entries of a config, `file_fingerprint`) is always hashed whole, since a rewrite in
  place that keeps size and mtime would otherwise reuse artifacts of the old content.
* **machine**: `runtime_fingerprint` names the device (the CUDA card, or the CPU architecture)
  and the library versions; the precision is resolved in each training spec.
"""

from __future__ import annotations

import ast
import hashlib
import os
import platform
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

import coreset_lab

PACKAGE_DIR = Path(coreset_lab.__file__).resolve().parent

# The folders that compute each stage; the modules they import are added automatically.
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "embedding": ("embedding", "data"),
    "clustering": ("clustering",),
    "scoring_model": ("services", "training", "models", "data"),
    "evaluation": ("services", "training", "models", "data"),
    "beta_trial": ("protocols", "selection", "training", "models", "data"),
}
# The folders (and one leaf) that present or orchestrate results and compute none: an import of
# them never pulls their code into a stage's hash (they import everything, so the hashes would
# stop telling stages apart).
PRESENTATION = ("app", "run", "report", "progress")
# Config entries that name files whose contents enter keys: weights, a list or array file, an
# embeddings file and its ids, a labels file.
FILE_KEYS = ("weights", "path", "ids", "labels")
SAMPLED_FILES = 256  # files whose content enters a sampled identity
SAMPLE_BYTES = 1 << 16  # bytes read from the start, middle and end of each sampled file


# --- code ---------------------------------------------------------------------------------------


def _module_files(name: str) -> list[Path]:
    """The source files of coreset_lab.<name>: one module, or every module of a package."""
    base = PACKAGE_DIR.joinpath(*name.split("."))
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    return [base.with_suffix(".py")] if base.with_suffix(".py").is_file() else []


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


@cache
def _parsed(path: Path) -> tuple[str, frozenset[str]]:
    """(normalised source, coreset_lab modules it imports) of one file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imports: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imports.add(node.module)
            imports.update(f"{node.module}.{a.name}" for a in node.names)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]  # a docstring changes nothing
    ours = frozenset(
        m.removeprefix("coreset_lab.") for m in imports if m.startswith("coreset_lab.")
    )
    return ast.dump(tree, annotate_fields=False), ours


def _resolve(name: str) -> list[Path]:
    """The file of module coreset_lab.<name> (of a package: its __init__), if it is a module."""
    if not name:
        return [PACKAGE_DIR / "__init__.py"]
    base = PACKAGE_DIR.joinpath(*name.split("."))
    return [f for f in (base.with_suffix(".py"), base / "__init__.py") if f.is_file()][:1]


def _closure(roots: tuple[str, ...]) -> list[Path]:
    """The files of `roots` and of every coreset_lab module they import, transitively."""
    seen: set[Path] = set()
    todo = [f for r in roots for f in _module_files(r)]
    while todo:
        path = todo.pop()
        if path in seen or _module_name(path).split(".")[0] in PRESENTATION:
            continue
        seen.add(path)
        parts = _module_name(path).split(".")
        # Importing a.b.c runs the __init__ of a and a.b too.
        todo += [f for i in range(len(parts)) for f in _resolve(".".join(parts[:i]))]
        todo += [f for name in _parsed(path)[1] for f in _resolve(name)]
    return sorted(seen)


@cache
def code_fingerprint(stage: str) -> str:
    """Hash of the code that computes `stage` (all of coreset_lab for a stage not listed)."""
    roots = STAGE_CODE.get(stage, ("",))  # "": the whole package (its computing modules)
    h = hashlib.sha256(coreset_lab.__version__.encode())
    for path in _closure(roots):
        h.update(str(path.relative_to(PACKAGE_DIR)).encode())
        h.update(_parsed(path)[0].encode())
    return h.hexdigest()[:16]


# --- data and files -----------------------------------------------------------------------------


def _update_with_array(h, array) -> None:
    arr = np.ascontiguousarray(array)
    h.update(f"{arr.dtype}:{arr.shape}".encode())
    h.update(memoryview(arr).cast("B"))  # no copy of a large array


def _file_content(h, path: str, size: int, full: bool) -> None:
    with open(path, "rb") as fh:
        if full or size <= 3 * SAMPLE_BYTES:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
            return
        for offset in (0, size // 2, size - SAMPLE_BYTES):
            fh.seek(offset)
            h.update(fh.read(SAMPLE_BYTES))


def files_fingerprint(paths: list[str], full: bool = False) -> str:
    """Identity of a list of files: path, size and mtime of each, plus the content of an evenly
    spaced sample of them (of all of them when `full`)."""
    h = hashlib.sha256()
    stats = []
    for p in paths:
        st = os.stat(p)
        stats.append(st.st_size)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    picked = range(len(paths))
    if not full and len(paths) > SAMPLED_FILES:
        picked = np.linspace(0, len(paths) - 1, SAMPLED_FILES).round().astype(int)
    for i in picked:
        _file_content(h, paths[i], stats[i], full)
    return h.hexdigest()[:20]


def file_fingerprint(path: str | Path) -> str:
    """Identity of one file the run reads whole: its every byte (plus path, size, mtime)."""
    real = str(Path(path).expanduser().resolve())
    st = os.stat(real)
    return _whole_file(real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@lru_cache(maxsize=256)
def _whole_file(path: str, *stat: int) -> str:
    # Every key of a run names the same weights or embeddings file: read it once per process.
    # The ctime is in the cache key because any write changes it and os.utime cannot set it back.
    return files_fingerprint([path], full=True)


def _split_fingerprint(split, full: bool) -> str:
    h = hashlib.sha256()
    if hasattr(split, "images"):  # TensorImageSet: the loaded pixels themselves
        _update_with_array(h, split.images.cpu().numpy())
    elif hasattr(split, "samples"):  # FileImageSet: the files behind it
        h.update(files_fingerprint([p for p, _ in split.samples], full).encode())
    else:  # an unknown kind of split: never share its artifacts
        h.update(os.urandom(16))
    _update_with_array(h, np.asarray(split.targets, dtype=np.int64))
    return h.hexdigest()[:20]


def data_fingerprint(bundle, full: bool = False) -> dict:
    """Identity of a loaded dataset's train and test splits (a pool has no test split)."""
    test = bundle.test
    return {
        "train": _split_fingerprint(bundle.train_eval, full),
        "test": None if test is None else _split_fingerprint(test, full),
    }


def with_file_fingerprints(node):
    """A copy of a config dict in which every FILE_KEYS entry naming an existing file carries
    that file's whole-content identity: replacing or rewriting a weights, embeddings, ids, list
    or arrays file under the same name changes the key."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in FILE_KEYS and isinstance(value, str) and Path(value).is_file():
                value = {"file": value, "identity": file_fingerprint(value)}
            out[key] = with_file_fingerprints(value)
        return out
    if isinstance(node, list):
        return [with_file_fingerprints(v) for v in node]
    return node


# --- machine ------------------------------------------------------------------------------------


def runtime_fingerprint(device) -> dict:
    """The device kind and name and the versions of the libraries that compute results."""
    import torch

    name = platform.machine()
    if getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(device)
    return {
        "device": f"{getattr(device, 'type', device)}:{name}",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "faiss": _installed_version("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss"),
    }


def _installed_version(*distributions: str) -> str | None:
    for dist in distributions:
        try:
            return f"{dist}=={metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None
