"""Unlabelled pools (a folder of images, a path list, arrays) through the label-free methods,
selection-only runs, and the outputs a person acts on (coreset.csv, the subset mapping, the
contact sheet)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import coreset_lab.run.pipeline as pipeline
from coreset_lab.data import build_dataset
from coreset_lab.errors import UserError
from coreset_lab.run.checks import check_config
from tests.conftest import run_cli

FAST = ["trainer=debug", "trainer.proxy_epochs=2", "logger=none"]
POOL = ["dataset=unlabelled_folder", "clustering.num_clusters=10"]


def write_digit_pngs(root: Path, limit: int | None = None) -> list[Path]:
    """The digits train images as PNG files in a made-up layout (three batches, some one level
    deeper), as a pool someone was handed; returns the files in sample order."""
    images = build_dataset("digits").train.images.numpy()[:limit, 0]
    files = []
    for i, image in enumerate(images):
        folder = root / f"batch{i % 3}" / ("deep" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        files.append(folder / f"img_{i:04d}.png")
        Image.fromarray(image).save(files[-1])
    return files


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pool")
    write_digit_pngs(root)
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_unlabelled_folder_is_a_pool_without_labels(pool):
    data = build_dataset("unlabelled_folder", root=str(pool))
    assert not data.labelled and data.test is None and data.num_classes == 0
    assert (data.in_channels, data.image_size, len(data.train)) == (1, 8, 1347)
    assert data.train_files == sorted(str(p) for p in pool.rglob("*.png"))
    with pytest.raises(UserError, match="has no labels"):
        _ = data.train_targets
    # decoded pixels are the files' pixels, in the order of the files
    first = np.asarray(Image.open(data.train_files[0]))
    assert np.array_equal(data.train.images[0, 0].numpy(), first)


def test_elfs_with_pca_selects_from_an_unlabelled_folder_and_names_the_files(pool, tmp_path):
    out = tmp_path / "run"
    r = run_cli(
        *FAST,
        *POOL,
        f"dataset.root={pool}",
        "method=elfs",
        "selector.prune_rate=0.7",
        "protocol.beta_grid=[0.0,0.2]",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["method"] == "elfs[pca]" and result["labelled"] is False
    assert result["test_accuracy"] is None and "evaluate" not in result["stage_seconds"]
    assert result["selection_only"] == "dataset unlabelled_folder has no labels"
    assert result["pseudo_label_quality"] is None  # nothing to compare the clusters with
    rows = read_csv(out / "coreset.csv")
    assert len(rows) == result["coreset_size"] == 1347 - int(0.7 * 1347)
    assert set(rows[0]) == {"index", "path", "score", "hardness_rank", "cluster"}
    files = sorted(str(p) for p in pool.rglob("*.png"))
    assert [r["path"] for r in rows] == [files[int(r["index"])] for r in rows]
    assert np.array_equal([int(r["index"]) for r in rows], np.load(out / "coreset.npy"))
    assert (out / "contact_sheet.png").stat().st_size > 0
    log = "".join(p.read_text() for p in out.glob("*.log"))
    assert "not evaluated (selection only: dataset unlabelled_folder has no labels)" in log


def test_d2_select_only_on_an_unlabelled_folder(pool, make_cfg, tmp_path):
    cfg, choices = make_cfg(*FAST, *POOL, f"dataset.root={pool}", "method=d2")
    result = pipeline.run(cfg, choices)
    assert result["method"] == "d2[pca]" and result["test_accuracy"] is None
    assert result["cost"]["models_trained"] == 0
    rows = read_csv(tmp_path / "run" / "coreset.csv")
    assert all(Path(r["path"]).is_file() and Path(r["path"]).is_relative_to(pool) for r in rows)
    assert len({r["path"] for r in rows}) == len(rows) == result["coreset_size"]


def test_random_selects_from_a_pool_without_reading_labels(pool, make_cfg, tmp_path):
    cfg, choices = make_cfg(*FAST, f"dataset.root={pool}", "dataset=unlabelled_folder",
                            "method=random")  # fmt: skip
    result = pipeline.run(cfg, choices)
    assert result["method"] == "random" and result["selection_only"]
    rows = read_csv(tmp_path / "run" / "coreset.csv")
    assert set(rows[0]) == {"index", "path"} and len(rows) == result["coreset_size"]


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["method=el2n"], "has no labels, and protocol=fitting needs them"),
        (["protocol=unseen", "scorer=margin"], "protocol=unseen needs them"),
        (["method=full"], "method=full needs them"),
        # BADGE buys the labels of the samples it selects: a pool has none to buy
        (["method=badge"], "has no labels, and protocol=badge"),
        (["method=elfs", "evaluate=true"], "evaluate=true trains a target model"),
        (["method=elfs", "protocol.beta_truth=true"], "protocol.beta_truth=true trains"),
        (["method=elfs", "clustering.num_clusters=null"], "set clustering.num_clusters=K"),
        (["method=elfs", "clustering=oracle"], "clustering=oracle reads ground-truth labels"),
    ],
)
def test_what_needs_labels_is_refused_for_a_pool_before_its_images_load(
    make_cfg, tmp_path, overrides, needle
):
    cluster = [] if "clustering=oracle" in overrides else ["clustering.num_clusters=10"]
    cfg, _ = make_cfg(*FAST, "dataset=unlabelled_folder", f"dataset.root={tmp_path}", *cluster,
                      *overrides)  # fmt: skip
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace("=", "=")):
        check_config(cfg)


# Which ground-truth train labels each method preset reads to choose its coreset (the target
# model, trained on the coreset's labels, aside): none, those of the samples it selects (an
# active learner buys them), or all of them. Written out here, independently of the protocols'
# `label_reader`, which must agree.
LABELS_READ = {
    **dict.fromkeys(["random", "elfs", "d2", "prototypicality", "kcenter", "moderate"], "none"),
    "badge": "selected",
    **dict.fromkeys(
        ["aum", "ccs", "dynunc", "el2n", "entropy", "fitting", "forgetting", "full", "grand",
         "least_confidence", "margin", "tdds", "unseen_holdout", "unseen_incremental"],
        "all",
    ),
}  # fmt: skip


def test_every_method_declares_the_train_labels_it_reads(make_cfg):
    from coreset_lab.run.config import CONF_DIR

    methods = sorted(p.stem for p in (Path(CONF_DIR) / "method").glob("*.yaml"))
    assert sorted(LABELS_READ) == methods  # a new preset says which labels it reads
    for method in methods:
        cfg, _ = make_cfg(f"method={method}")
        parts = check_config(cfg)
        reader = parts.protocol.label_reader(parts.scorer, parts.selector)
        assert (reader is None) == (LABELS_READ[method] == "none"), (method, reader)
        if LABELS_READ[method] == "selected":
            assert "of every sample it selects" in reader, (method, reader)
        if parts.protocol.label_free:
            assert LABELS_READ[method] == "none", method


def test_a_pool_needs_its_folder_or_list(make_cfg, tmp_path):
    cfg, _ = make_cfg("dataset=unlabelled_folder", f"dataset.root={tmp_path}/nowhere")
    with pytest.raises(UserError, match="no such folder"):
        check_config(cfg)
    cfg, _ = make_cfg("dataset=path_list")
    with pytest.raises(UserError, match="needs dataset.path"):
        check_config(cfg)


def test_path_list_keeps_its_order_and_reads_relative_paths(pool, tmp_path):
    files = sorted(pool.rglob("*.png"))[:40][::-1]
    listing = tmp_path / "list.csv"
    lines = ["id,path"] + [f"{i},{f.relative_to(pool)}" for i, f in enumerate(files)]
    listing.write_text("\n".join(lines) + "\n")
    data = build_dataset("path_list", root=str(pool), path=str(listing))
    assert data.train_files == [str(f) for f in files] and not data.labelled
    (tmp_path / "broken.txt").write_text("missing.png\n")
    with pytest.raises(UserError, match="1 of the 1 images listed"):
        build_dataset("path_list", path=str(tmp_path / "broken.txt"))


def test_arrays_with_and_without_labels(tmp_path):
    digits = build_dataset("digits")
    images = digits.train.images.numpy()[:, 0]  # [N, 8, 8]
    np.save(tmp_path / "x.npy", images)
    pool = build_dataset("arrays", path=str(tmp_path / "x.npy"))
    assert not pool.labelled and pool.test is None and pool.image_size == 8
    assert np.array_equal(pool.train.images.numpy()[:, 0], images)
    np.savez(tmp_path / "xy.npz", images=images[..., None], labels=digits.train_targets,
             test_images=digits.test.images.numpy(), test_labels=digits.test_targets)  # fmt: skip
    full = build_dataset("arrays", path=str(tmp_path / "xy.npz"))
    assert full.evaluable and full.num_classes == 10
    assert np.array_equal(full.train_targets, digits.train_targets)
    np.save(tmp_path / "bad.npy", np.zeros((4, 8, 6), dtype=np.uint8))
    with pytest.raises(UserError, match="square"):
        build_dataset("arrays", path=str(tmp_path / "bad.npy"))


def test_labelled_arrays_without_test_split_select_with_labels_but_do_not_evaluate(
    make_cfg, tmp_path
):
    digits = build_dataset("digits")
    np.savez(tmp_path / "xy.npz", x=digits.train.images.numpy(), y=digits.train_targets)
    cfg, choices = make_cfg(*FAST, "dataset=arrays", f"dataset.path={tmp_path}/xy.npz")
    result = pipeline.run(cfg, choices)  # method el2n: trains on the labels, evaluates nothing
    assert result["method"] == "el2n" and result["test_accuracy"] is None
    assert result["selection_only"] == "dataset arrays has no test split"
    cfg, choices = make_cfg(*FAST, "dataset=arrays", f"dataset.path={tmp_path}/xy.npz",
                            "evaluate=true")  # fmt: skip
    with pytest.raises(UserError, match="has no test split"):
        pipeline.run(cfg, choices)


def test_a_train_subset_is_mapped_back_to_the_dataset(make_cfg, tmp_path):
    cfg, choices = make_cfg(*FAST, "method=random", "dataset.train_subset=500", "evaluate=false")
    result = pipeline.run(cfg, choices)
    out = tmp_path / "run"
    subset, coreset = np.load(out / "train_subset.npy"), np.load(out / "coreset.npy")
    rows = read_csv(out / "coreset.csv")
    assert result["outputs"]["train_subset"] == "train_subset.npy" and subset.shape == (500,)
    assert [int(r["index"]) for r in rows] == subset[coreset].tolist()
    assert [int(r["subset_index"]) for r in rows] == coreset.tolist()
    full = build_dataset("digits").train.images
    kept = build_dataset("digits", train_subset=500).train.images[coreset]
    assert np.array_equal(full[subset[coreset]], kept)


def test_the_proxy_learns_as_many_pseudo_classes_as_there_are_clusters(make_cfg, tmp_path):
    """clustering.num_clusters above the class count used to crash the proxy (10 outputs for 20
    pseudo-classes); the target model keeps the dataset's classes."""
    cfg, choices = make_cfg(*FAST, "method=elfs", "clustering.num_clusters=20",
                            "protocol.beta_search=false",
                            "trainer.target_iterations=5")  # fmt: skip
    result = pipeline.run(cfg, choices)
    assert result["clustering"]["k"] == 20 and result["test_accuracy"] is not None
    rows = read_csv(tmp_path / "run" / "coreset.csv")
    assert max(int(r["cluster"]) for r in rows) > 9


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_pools_key_follows_its_files_contents(tmp_path, in_memory):
    """Decoded pools are keyed by their pixels, file-read ones by their files' identity: either
    way, one image replaced under the same name, size and mtime gives another key (BMP files:
    the same size whatever the pixels)."""
    from coreset_lab.store.fingerprint import data_fingerprint

    images = build_dataset("digits").train.images.numpy()[:40, 0]
    files = [tmp_path / "pool" / f"{i:02d}.bmp" for i in range(len(images))]
    files[0].parent.mkdir()
    for image, f in zip(images, files, strict=True):
        Image.fromarray(image).save(f)

    def key():
        pool = build_dataset("unlabelled_folder", root=str(files[0].parent), in_memory=in_memory)
        return data_fingerprint(pool)

    first = key()
    before = files[7].stat()
    Image.fromarray(255 - images[7]).save(files[7])
    os.utime(files[7], ns=(before.st_atime_ns, before.st_mtime_ns))
    assert files[7].stat().st_size == before.st_size
    assert first["test"] is None and key()["train"] != first["train"]
