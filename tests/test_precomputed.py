"""encoder=precomputed: bring your own embeddings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import coreset_lab.run.pipeline as pipeline
from coreset_lab.data import build_dataset
from coreset_lab.embedding.precomputed import rows_for
from coreset_lab.errors import UserError
from tests.test_unlabelled import write_digit_pngs

ELFS = [
    "trainer=debug",
    "trainer.proxy_epochs=2",
    "method=elfs",
    "selector.prune_rate=0.7",
    "protocol.beta_grid=[0.0,0.2]",
    "evaluate=false",
]


def run(make_cfg, tmp_path: Path, name: str, *overrides: str, store: str | None = None):
    cfg, choices = make_cfg(
        *ELFS, *overrides, f"paths.store_dir={tmp_path}/store-{store or name}",
        f"paths.output_dir={tmp_path}/{name}",
    )  # fmt: skip
    result = pipeline.run(cfg, choices)
    out = tmp_path / name
    return result, np.load(out / "coreset.npy"), np.load(out / "scores.npy")


def stages(result: dict, kind: str) -> list[str]:
    return [a.split("/")[0] for a in result["artifacts"][kind]]


def test_precomputed_embeddings_give_the_encoders_coreset(make_cfg, tmp_path):
    pca = run(make_cfg, tmp_path, "pca", "encoder=pca")
    emb = np.load(next((tmp_path / "store-pca" / "embedding").glob("*/embeddings.npy")))
    np.save(tmp_path / "emb.npy", emb)
    own = run(make_cfg, tmp_path, "own", "encoder=precomputed", f"encoder.path={tmp_path}/emb.npy")
    assert own[0]["method"] == "elfs[precomputed]"
    np.testing.assert_array_equal(own[1], pca[1])
    np.testing.assert_array_equal(own[2], pca[2])
    assert "embedding" not in stages(own[0], "built")  # read in place, never copied
    # rows in another order, with an order file naming each row's sample
    order = np.random.default_rng(0).permutation(len(emb))
    np.save(tmp_path / "shuffled.npy", emb[order])
    (tmp_path / "order.txt").write_text("\n".join(map(str, order)) + "\n")
    shuffled = run(
        make_cfg, tmp_path, "shuffled", "encoder=precomputed",
        f"encoder.path={tmp_path}/shuffled.npy", f"encoder.ids={tmp_path}/order.txt",
    )  # fmt: skip
    np.testing.assert_array_equal(shuffled[1], pca[1])


def test_the_key_follows_the_embedding_files_contents(make_cfg, tmp_path):
    emb = np.random.default_rng(0).normal(size=(1347, 16)).astype(np.float32)
    path = tmp_path / "emb.npy"
    np.save(path, emb)
    args = ("method=d2", "encoder=precomputed", f"encoder.path={path}")
    first = run(make_cfg, tmp_path, "a", *args, store="shared")
    again = run(make_cfg, tmp_path, "b", *args, store="shared")
    assert "clustering" in stages(again[0], "reused")
    before = path.stat()
    np.save(path, emb[::-1].copy())  # same name, size and mtime; other contents
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    changed = run(make_cfg, tmp_path, "c", *args, store="shared")
    assert "clustering" in stages(changed[0], "built")
    assert not np.array_equal(changed[2], first[2])


def test_a_wrong_count_is_refused_before_any_work(make_cfg, tmp_path):
    np.save(tmp_path / "emb.npy", np.zeros((100, 4), dtype=np.float32))
    with pytest.raises(UserError, match="holds 100 embeddings but the train set has 1347"):
        run(make_cfg, tmp_path, "x", "encoder=precomputed", f"encoder.path={tmp_path}/emb.npy")
    assert not (tmp_path / "store-x" / "scoring_model").exists()
    np.save(tmp_path / "f64.npy", np.zeros((1347, 4)))
    with pytest.raises(UserError, match="float16 or float32"):
        run(make_cfg, tmp_path, "y", "encoder=precomputed", f"encoder.path={tmp_path}/f64.npy")


def test_ids_name_files_of_a_pool_and_a_subset_takes_its_rows(tmp_path):
    files = write_digit_pngs(tmp_path / "pool", limit=30)
    data = build_dataset("unlabelled_folder", root=str(tmp_path / "pool"))
    by_name = {str(f): i for i, f in enumerate(files)}
    # rows in the order of `files` (not the pool's sorted order), named by relative paths
    ids = [str(f.relative_to(tmp_path / "pool")) for f in files]
    rows = rows_for(len(ids), ids, data)
    assert [by_name[f] for f in data.train_files] == rows.tolist()
    with pytest.raises(UserError, match="have no embedding"):
        rows_for(len(ids) - 1, ids[:-1], data)
    with pytest.raises(UserError, match="name the same sample"):
        rows_for(len(ids), [ids[0], *ids[:-1]], data)
    shutil.copy(files[0], tmp_path / "pool" / "batch1" / files[0].name)  # a second img_0000.png
    data = build_dataset("unlabelled_folder", root=str(tmp_path / "pool"))
    with pytest.raises(UserError, match="names more than one file"):
        rows_for(1, [files[0].name], data)
    subset = build_dataset("digits", train_subset=200)
    rows = rows_for(1347, None, subset)  # embeddings of the whole dataset
    assert np.array_equal(rows, subset.train_source_indices)
    shutil.rmtree(tmp_path / "pool")
