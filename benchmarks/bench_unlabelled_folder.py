"""Select-only ELFS (PCA) on an unlabelled folder of PNG files: wall time and peak memory.

Writes the Fashion-MNIST train images (60,000 by default; Debian's dataset-fashion-mnist files,
read by coreset_lab/data/fashion_mnist.py) as PNG files in a made-up layout (100 folders of 600),
without their labels, then runs

    coreset-lab method=elfs encoder=pca dataset=unlabelled_folder dataset.root=<folder>
                clustering.num_clusters=10 trainer=fmnist_cpu cache=false ...

in a child process from an empty store, as a user would. Reports the run's wall time (process
start to exit, decoding the PNGs included), its stages (results.json), and the peak resident
memory (resource.getrusage(RUSAGE_CHILDREN).ru_maxrss: the largest single process of the run,
its decoding workers included one at a time, not the sum of the tree).

    python benchmarks/bench_unlabelled_folder.py --limit 2000      # a check: ~1 min on 2 cores
    python benchmarks/bench_unlabelled_folder.py                   # all 60,000 images
    python benchmarks/bench_unlabelled_folder.py --keep /tmp/fm trainer.proxy_epochs=5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from coreset_lab.data.fashion_mnist import DEFAULT_ROOT, build_fashion_mnist

PER_FOLDER = 600
RUN = [
    "method=elfs",
    "encoder=pca",
    "dataset=unlabelled_folder",
    "clustering.num_clusters=10",
    "trainer=fmnist_cpu",
    "+model.kwargs={width: 16, depth: 3}",
    "evaluate=auto",  # no labels: selection only, and the table says so
    "cache=false",
    "logger=none",
]


def write_pngs(folder: Path, limit: int | None, root: str) -> int:
    """The train images as <folder>/<shard>/<index>.png; returns how many."""
    images = build_fashion_mnist(root).train.images.numpy()[:limit, 0]
    for i, image in enumerate(images):
        shard = folder / f"{i // PER_FOLDER:03d}"
        if i % PER_FOLDER == 0:
            shard.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(shard / f"{i:05d}.png")
    return len(images)


def run_selection(folder: Path, out: Path, overrides: list[str]) -> tuple[float, dict, str]:
    args = [*RUN, f"dataset.root={folder}", f"hydra.run.dir={out}/run",
            f"paths.store_dir={out}/store", *overrides]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "coreset_lab", *args], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get(
                              "OMP_NUM_THREADS", "1")})  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"the run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads((out / "run" / "results.json").read_text())
    return wall, result, " ".join(args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--limit", type=int, default=None, help="first N train images (default all)")
    p.add_argument("--fashion-root", default=DEFAULT_ROOT)
    p.add_argument("--keep", type=Path, default=None, help="write the folder here and keep it")
    p.add_argument("overrides", nargs="*", help="extra config overrides for the run")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="coreset-lab-pool-") as tmp:
        out = args.keep or Path(tmp)
        folder = out / "pool"
        start = time.perf_counter()
        n = write_pngs(folder, args.limit, args.fashion_root)
        written = time.perf_counter() - start
        size = sum(f.stat().st_size for f in folder.rglob("*.png"))
        wall, result, command = run_selection(folder, out, args.overrides)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB
        rows = np.loadtxt(out / "run" / "coreset.csv", delimiter=",", skiprows=1, usecols=0)
    print(f"pool     : {n} PNG files, {size / 2**20:.1f} MiB, written in {written:.1f} s")
    print(f"command  : coreset-lab {command}")
    print(f"result   : {result['method']}, coreset {result['coreset_size']} / {result['n_train']}"
          f" ({len(rows)} rows in coreset.csv), {result['selection_only']}")  # fmt: skip
    print(f"wall     : {wall:.1f} s (process start to exit)")
    print(f"peak RSS : {peak:.0f} MiB (largest single process)")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result["stage_seconds"].items())
    print(f"stages   : {stages}")


if __name__ == "__main__":
    main()
