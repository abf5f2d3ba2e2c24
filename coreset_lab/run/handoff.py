"""The outputs a person acts on: coreset.csv, the subset mapping and the contact sheet.

coreset.csv has one row per kept sample, sorted by index:

* `index`: the sample's index in the dataset as given (before any `dataset.train_subset`);
* `subset_index`: its position in the train subset the run used (only when one was drawn; this
  is what coreset.npy and scores.npy are indexed by);
* `path`: its file, for datasets read from files;
* `score` and `hardness_rank` (1 = the hardest of all N samples), when the selection read
  scores (a random one does not);
* `cluster` (pseudo-label of a label-free run), `stage` (the UNSEEN stage that added it) or
  `round` (the BADGE round that bought its label: 0 = the random first batch).

With a train subset, train_subset.npy maps every position of the subset to its dataset index.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from coreset_lab.data.base import DataBundle
from coreset_lab.files import atomic_write_bytes, save_npy
from coreset_lab.protocols.base import Selection
from coreset_lab.run.contact_sheet import write_contact_sheet

CSV_NAME = "coreset.csv"
SUBSET_NAME = "train_subset.npy"
SHEET_NAME = "contact_sheet.png"


def hardness_rank(scores: np.ndarray) -> np.ndarray:
    """1 for the highest score of all samples, N for the lowest (ties in index order)."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(1, order.size + 1)
    return rank


def coreset_table(data: DataBundle, selection: Selection, scored: bool) -> dict[str, list]:
    """The columns of coreset.csv, each a list with one entry per kept sample."""
    kept = np.asarray(selection.coreset, dtype=np.int64)
    columns: dict[str, list] = {"index": data.source_index()[kept].tolist()}
    if data.train_source_indices is not None:
        columns["subset_index"] = kept.tolist()
    if data.train_files is not None:
        columns["path"] = [data.train_files[i] for i in kept]
    if scored and selection.scores is not None:
        scores = np.asarray(selection.scores, dtype=np.float64)
        columns["score"] = [f"{s:.6g}" for s in scores[kept]]
        columns["hardness_rank"] = hardness_rank(scores)[kept].tolist()
    for name, values in selection.columns.items():
        columns[name] = np.asarray(values)[kept].tolist()
    return columns


def write_coreset_csv(path: Path, columns: dict[str, list]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*columns.values(), strict=True))
    atomic_write_bytes(path, text.getvalue().encode())


def sheet_groups(data: DataBundle, selection: Selection, label_free: bool):
    """The contact sheet's rows: clusters of a label-free run, classes of a supervised one
    (which read the labels anyway), none for a random pick from an unlabelled pool."""
    if "cluster" in selection.columns:
        return "cluster", np.asarray(selection.columns["cluster"])
    if data.labelled and not label_free:
        return "class", data.train_targets
    return None


def write_handoff(
    out_dir: Path,
    data: DataBundle,
    selection: Selection,
    title: str,
    *,
    label_free: bool,
    scored: bool,
) -> dict:
    """Write the files; returns their names for results.json (None: not written). `scored`:
    the selection read the scores; `label_free`: it read no label (no class rows then)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_coreset_csv(out_dir / CSV_NAME, coreset_table(data, selection, scored))
    subset = None
    if data.train_source_indices is not None:
        save_npy(out_dir / SUBSET_NAME, data.source_index())
        subset = SUBSET_NAME
    groups = sheet_groups(data, selection, label_free)
    scores = np.asarray(selection.scores, dtype=np.float64) if scored else None
    sheet = write_contact_sheet(out_dir / SHEET_NAME, data, selection.coreset, scores, groups,
                                title)  # fmt: skip
    return {"coreset_csv": CSV_NAME, "train_subset": subset,
            "contact_sheet": SHEET_NAME if sheet else None}  # fmt: skip
