"""Bad or unusual inputs that used to be dropped or reused silently (issue #20): each is now read
in full or refused with one line (UserError, exit 2 from the CLI) before any model trains."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coreset_lab.data import build_dataset
from coreset_lab.errors import UserError
from tests.conftest import run_cli
from tests.datagen import make_image_folder


def write_pngs(folder: Path, n: int, size=(8, 8), seed: int = 0) -> list[Path]:
    """n grey PNGs of `size` (width, height) in `folder`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"img_{seed}_{i:03d}.png" for i in range(n)]
    for f in files:
        Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8)).save(f)
    return files


# --- 1. directory links ---------------------------------------------------------------------


def test_a_pool_follows_directory_links(tmp_path):
    write_pngs(tmp_path / "pool" / "here", 30)
    write_pngs(tmp_path / "elsewhere", 30, seed=1)
    (tmp_path / "pool" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    data = build_dataset("unlabelled_folder", root=str(tmp_path / "pool"))
    assert len(data.train) == 60
    assert sum("linked" in f for f in data.train_files) == 30


def test_a_link_cycle_in_a_pool_is_refused(tmp_path):
    write_pngs(tmp_path / "pool" / "a", 4)
    (tmp_path / "pool" / "a" / "loop").symlink_to(tmp_path / "pool", target_is_directory=True)
    with pytest.raises(UserError, match="again .*remove the link"):
        build_dataset("unlabelled_folder", root=str(tmp_path / "pool"))


def test_an_image_folder_follows_links_in_its_class_folders(tmp_path):
    make_image_folder(tmp_path / "set", classes=2, per_class=3, size=8)
    make_image_folder(tmp_path / "more", classes=2, per_class=3, size=8, seed=1, splits=("train",))
    wnid = sorted((tmp_path / "more" / "train").iterdir())[0]
    (tmp_path / "set" / "train" / wnid.name / "more").symlink_to(wnid, target_is_directory=True)
    data = build_dataset("image_folder", root=str(tmp_path / "set"), image_size=8)
    assert len(data.train) == 9


# --- 2. files read whole are hashed whole ---------------------------------------------------


def test_embeddings_changed_outside_the_sampled_blocks_are_not_reused(make_cfg, tmp_path):
    """345 kB of embeddings: the sampled identity reads 64 kB at the start, middle and end, so
    rows 300-600 (bytes 77-154 k) used to be invisible to the key."""
    import coreset_lab.run.pipeline as pipeline

    emb = np.random.default_rng(0).normal(size=(1347, 64)).astype(np.float32)
    path = tmp_path / "emb.npy"
    np.save(path, emb)
    args = ["method=d2", "encoder=precomputed", f"encoder.path={path}", "evaluate=false",
            f"paths.store_dir={tmp_path}/store"]  # fmt: skip

    def run(name: str) -> dict:
        cfg, choices = make_cfg(*args, f"paths.output_dir={tmp_path}/{name}")
        return pipeline.run(cfg, choices)

    run("first")
    before = path.stat()
    emb[300:600] = emb[300:600][::-1] * 3  # same size; the rewrite keeps the mtime below
    np.save(path, emb)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    again = run("again")
    assert any(a.startswith("clustering/") for a in again["artifacts"]["built"])


# --- 3. degenerate inputs -------------------------------------------------------------------


def test_one_cluster_is_refused_from_the_cli_before_training(tmp_path):
    r = run_cli("trainer=debug", "method=elfs", "clustering.num_clusters=1", "evaluate=false",
                f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    error = [line for line in r.stderr.splitlines() if line.startswith("coreset-lab: error")]
    assert len(error) == 1 and "clustering.num_clusters" in error[0] and ">= 2" in error[0]
    assert "Traceback" not in r.stderr and not (tmp_path / "outputs").exists()


def test_constant_embeddings_giving_one_pseudo_class_are_refused(make_cfg, tmp_path):
    import coreset_lab.run.pipeline as pipeline

    np.save(tmp_path / "zeros.npy", np.zeros((1347, 8), dtype=np.float32))
    cfg, choices = make_cfg("trainer=debug", "method=elfs", "encoder=precomputed",
                            f"encoder.path={tmp_path}/zeros.npy", "evaluate=false")  # fmt: skip
    with pytest.raises(UserError, match="1 of its 10 clusters"):
        pipeline.run(cfg, choices)
    assert not list(tmp_path.rglob("scoring_model"))  # refused before the proxy trained


def test_a_path_list_naming_a_file_twice_is_refused(tmp_path):
    files = write_pngs(tmp_path / "imgs", 5)
    names = [f.name for f in files]
    (tmp_path / "list.txt").write_text("\n".join([*names, names[2], f"./{names[1]}"]) + "\n")
    with pytest.raises(UserError, match=rf"2 duplicate.*first: .*{names[2]}"):
        build_dataset("path_list", path=str(tmp_path / "imgs" / ".." / "list.txt"),
                      root=str(tmp_path / "imgs"))  # fmt: skip


def test_a_csv_path_list_without_a_known_column_is_refused(tmp_path):
    files = write_pngs(tmp_path / "imgs", 3)
    listing = tmp_path / "list.csv"
    listing.write_text("picture,n\n" + "".join(f"{f},{i}\n" for i, f in enumerate(files)))
    with pytest.raises(UserError, match="no path column.*path, file, filename, image"):
        build_dataset("path_list", path=str(listing))
    listing.write_text(f"path,n\n{files[0]},0\n,1\n\n{files[1]},2\n")
    with pytest.raises(UserError, match="1 row.* have no path .first: row 3"):
        build_dataset("path_list", path=str(listing))


# --- 4. the resolution of a pool ------------------------------------------------------------


def test_one_odd_first_image_does_not_set_the_size_of_the_pool(tmp_path, caplog):
    files = write_pngs(tmp_path / "pool", 20)
    write_pngs(tmp_path / "pool" / "0_odd", 1, size=(40, 1))  # sorted first
    data = build_dataset("unlabelled_folder", root=str(tmp_path / "pool"))
    assert "0_odd" in data.train_files[0]
    assert (data.image_size, data.in_channels, len(data.train)) == (8, 1, 21)
    first = np.asarray(Image.open(files[0]))
    assert np.array_equal(data.train.images[1, 0].numpy(), first)
    assert "mixed short sides (20 of 8, 1 of 1): auto takes the most common, 8" in caplog.text


# --- 5. one-line refusals -------------------------------------------------------------------


@pytest.mark.parametrize("side", [64, 40])  # 2x the limit and over: PIL's error, else its warning
def test_a_decompression_bomb_in_a_pool_is_named(tmp_path, monkeypatch, side):
    write_pngs(tmp_path / "pool", 5)
    bomb = write_pngs(tmp_path / "pool", 1, size=(side, side), seed=9)[0]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(UserError, match=f"cannot read image {bomb}.*DecompressionBomb"):
        build_dataset("unlabelled_folder", root=str(tmp_path / "pool"))
    from coreset_lab.data.base import load_rgb  # what DataLoader workers run

    if side == 64:
        with pytest.raises(UserError, match=f"cannot read image {bomb}"):
            load_rgb(str(bomb))


def test_nan_embeddings_are_refused_by_the_api_before_any_work(tmp_path):
    import coreset_lab

    emb = np.random.default_rng(0).normal(size=(1347, 8)).astype(np.float32)
    emb[5], emb[700, 2], emb[9, 0] = np.nan, np.inf, -np.inf
    with pytest.raises(UserError, match=r"3 of the 1347 embeddings hold NaN.*first: row 5\)"):
        coreset_lab.select("digits", method="d2", embeddings=emb, evaluate=False,
                           overrides=[f"paths.root_dir={tmp_path}", "logger=none"])  # fmt: skip
    assert not list(tmp_path.rglob("clustering"))  # refused before the clustering ran


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_a_list_file_that_is_not_utf8_is_refused(tmp_path, suffix):
    files = write_pngs(tmp_path / "imgs", 2)
    listing = tmp_path / f"list{suffix}"
    header = b"path\n" if suffix == ".csv" else b""
    listing.write_bytes(header + f"{files[0]}\n".encode() + "caf\xe9.png\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"not UTF-8 text \(byte b'\\xe9'"):
        build_dataset("path_list", path=str(listing))


@pytest.mark.parametrize("fraction", [0.999, 0.001])  # every sample held out, or none
def test_a_holdout_fraction_leaving_an_empty_part_is_refused_before_training(
    make_cfg, tmp_path, fraction
):
    import coreset_lab.run.pipeline as pipeline

    cfg, choices = make_cfg("trainer=debug", "method=elfs", "evaluate=false",
                            f"protocol.holdout_fraction={fraction}")  # fmt: skip
    with pytest.raises(UserError, match=f"protocol.holdout_fraction={fraction}.*empty"):
        pipeline.run(cfg, choices)
    assert not list(tmp_path.rglob("scoring_model"))  # refused before the proxy trained
