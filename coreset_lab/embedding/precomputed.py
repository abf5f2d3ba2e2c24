"""Embeddings the user brings: `encoder=precomputed encoder.path=emb.npy`.

The file is an [N, d] float16/float32 `.npy` (memory-mapped: never read whole unless rows must be
reordered) or a `.npz` with `embeddings` and optionally `ids`. Rows are matched to the dataset's
train samples:

* without ids, row i is train sample i; when a `dataset.train_subset` was drawn, the rows may
  instead cover the whole dataset (N = its size) and the subset's rows are taken;
* with ids (`encoder.ids=order.txt`, one id per line, or a CSV's `id` / `path` column, or the
  `.npz`'s `ids` array), each id names a sample: a file path (absolute, or its last components
  such as `class/img.png` or `img.png`, unique among the dataset's files) for datasets read from
  files, else the sample's index in the dataset. Every train sample needs one row; rows naming
  other samples are ignored.

Nothing is computed, so nothing is stored: the key downstream stages use is made of the files'
identities and the data's (see protocols/label_free.py).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from coreset_lab.data.base import DataBundle, read_text
from coreset_lab.errors import UserError

DTYPES = (np.float16, np.float32)
ID_COLUMNS = ("id", "path", "file", "filename", "index")


def open_embeddings(path: str) -> tuple[np.ndarray, list[str] | None]:
    """(embeddings, ids from the file itself or None), checked for shape and type."""
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"encoder.path={path}: cannot read it as a .npy/.npz ({err})") from None
    ids = None
    if not isinstance(loaded, np.ndarray):
        with loaded:
            if "embeddings" not in loaded.files:
                raise UserError(f"encoder.path={path}: a .npz needs an 'embeddings' array")
            try:  # an array of Python objects needs unpickling, which is refused
                emb = loaded["embeddings"]
                ids = [str(v) for v in loaded["ids"]] if "ids" in loaded.files else None
            except ValueError as err:
                raise UserError(
                    f"encoder.path={path}: cannot read its arrays ({err}); save embeddings as "
                    f"float16/float32 and ids as integers or text"
                ) from None
    else:
        emb = loaded
    if emb.ndim != 2 or emb.shape[1] < 1 or emb.dtype not in DTYPES:
        raise UserError(
            f"encoder.path={path}: embeddings must be [N, d] float16 or float32, got "
            f"{emb.dtype} of shape {emb.shape}"
        )
    check_finite(emb, path)
    return emb, ids


# Files already found finite in this process, by identity: the pre-run check and the load that
# follows open the same file, which need not be read through twice.
_FINITE: set[tuple] = set()


def check_finite(emb: np.ndarray, path: str) -> None:
    """Refuse NaN or infinite rows (k-means and every distance would fail on them, later and
    with a bare ValueError); read in chunks so a memory-mapped file never loads whole."""
    st = os.stat(path)
    identity = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if identity in _FINITE:
        return
    step = max(1, (64 << 20) // max(1, emb.shape[1] * emb.itemsize))  # rows of ~64 MB
    bad = [np.flatnonzero(~np.isfinite(emb[i : i + step]).all(axis=1)) + i
           for i in range(0, emb.shape[0], step)]  # fmt: skip
    bad = np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)
    if bad.size:
        raise UserError(
            f"encoder.path={path}: {bad.size} of the {emb.shape[0]} embeddings hold NaN or "
            f"infinite values (first: row {bad[0]}); recompute or drop them"
        )
    _FINITE.add(identity)


def read_ids(path: str) -> list[str]:
    """One id per line, or a CSV's id/path/file/filename/index column (else its first)."""
    text = read_text(path, "encoder.ids")
    if Path(path).suffix.lower() == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        header = [h.strip().lower() for h in rows[0]] if rows else []
        column = next((header.index(c) for c in ID_COLUMNS if c in header), None)
        body = rows[1:] if column is not None else rows
        return [r[column or 0].strip() for r in body if r]
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _by_file(ids: list[str], files: list[str]) -> list[int | None]:
    """For every id, the position of the train file it names (None: none does)."""
    absolute = {str(Path(f).resolve()): i for i, f in enumerate(files)}
    tails: dict[int, dict[tuple[str, ...], int | None]] = {}
    out: list[int | None] = []
    for ident in ids:
        p = Path(ident)
        if p.is_absolute():
            out.append(absolute.get(str(p.resolve())))
            continue
        depth = len(p.parts)
        if depth not in tails:
            table: dict[tuple[str, ...], int | None] = {}
            for i, f in enumerate(files):
                key = Path(f).parts[-depth:]
                table[key] = None if key in table else i  # None: ambiguous
            tails[depth] = table
        if p.parts in tails[depth] and tails[depth][p.parts] is None:
            raise UserError(
                f"embedding id {ident!r} names more than one file of the dataset: give longer "
                f"paths (relative to the dataset root) or absolute ones"
            )
        out.append(tails[depth].get(p.parts))
    return out


def _by_index(ids: list[str], data: DataBundle) -> list[int | None]:
    position = {int(s): i for i, s in enumerate(data.source_index())}
    try:
        return [position.get(int(ident)) for ident in ids]
    except ValueError:
        raise UserError(
            f"dataset {data.name} is not read from files, so embedding ids must be sample "
            f"indices (integers); got {next(i for i in ids if not i.lstrip('-').isdigit())!r}"
        ) from None


def rows_for(n_rows: int, ids: list[str] | None, data: DataBundle) -> np.ndarray | None:
    """The embedding row of every train sample; None when row i is sample i."""
    n = len(data.train_eval)
    if ids is None:
        if n_rows == n:
            return None
        source = data.train_source_indices
        if source is not None and n_rows == data.train_source_size:
            return np.asarray(source, dtype=np.int64)
        full = f" (or {data.train_source_size}, the whole dataset)" if source is not None else ""
        raise UserError(
            f"encoder.path holds {n_rows} embeddings but the train set has {n} samples{full}; "
            f"give encoder.ids=<file> naming the sample of each row if they are not in order"
        )
    if len(ids) != n_rows:
        raise UserError(f"{len(ids)} embedding ids for {n_rows} embeddings: one id per row")
    files = data.train_files
    hits = _by_file(ids, files) if files is not None else _by_index(ids, data)
    rows = np.full(n, -1, dtype=np.int64)
    for row, pos in enumerate(hits):
        if pos is None:
            continue
        if rows[pos] >= 0:
            raise UserError(f"embedding ids {rows[pos]} and {row} name the same sample")
        rows[pos] = row
    missing = np.flatnonzero(rows < 0)
    if missing.size:
        name = (
            files[missing[0]] if files is not None else f"index {data.source_index()[missing[0]]}"
        )
        raise UserError(
            f"{missing.size} of the {n} train samples have no embedding (first: {name}); "
            f"encoder.ids must name every sample"
        )
    return rows


def locate(opts: dict, data: DataBundle) -> tuple[np.ndarray, np.ndarray | None]:
    """The file's embeddings (memory-mapped) and the row of every train sample (None: row i is
    sample i); every refusal of a bad file, before anything is read whole (validate.py)."""
    emb, ids = open_embeddings(str(opts["path"]))
    if opts.get("ids") not in (None, ""):
        ids = read_ids(str(opts["ids"]))
    return emb, rows_for(emb.shape[0], ids, data)


def load_precomputed(opts: dict, data: DataBundle) -> np.ndarray:
    """The [N_train, d] embeddings in train order (the memory map itself when already so)."""
    emb, rows = locate(opts, data)
    if rows is None or np.array_equal(rows, np.arange(emb.shape[0])):
        return emb
    return np.asarray(emb[rows])  # reordered or a subset: in memory
