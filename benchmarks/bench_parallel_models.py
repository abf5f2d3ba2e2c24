"""Several independent small models on one device: which way of sharing it is fastest?

The workload is UNSEEN's first round: K fold models (mode=fold: model k trains on fold k), each
recording its dynamics, on the fast engine. Three ways to train them:

* sequential : one after the other in this process;
* vmap       : all K at once as one vmapped model (`protocol.batched=true`, StackedStepper);
* processes  : K models over P spawned processes (`protocol.workers=P`), start-up included.

Images/s counts the samples all K models trained on, over the wall time. Runs alternate, the
first of each is a warm-up (`--warmup 0`: none).

    python benchmarks/bench_parallel_models.py --dataset fashion_mnist --train-subset 10000 \
        --folds 5
    python benchmarks/bench_parallel_models.py --dataset digits --train-subset 0 --json par.json
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from bench_common import describe_hardware, hardware_info, write_json
from coreset_lab.data import build_dataset
from coreset_lab.models import build_model
from coreset_lab.protocols.folds import stratified_folds
from coreset_lab.training.budget import Budget
from coreset_lab.training.fast import Plan, train_models
from coreset_lab.training.recipe import Recipe

_DATA: dict = {}


def _setup(args) -> tuple:
    subset = args.train_subset or None  # 0: the whole split
    data = build_dataset(args.dataset, root=args.root, train_subset=subset)
    assign = stratified_folds(data.train_targets, args.folds, seed=0)
    folds = [np.flatnonzero(assign == k) for k in range(args.folds)]
    recipe = Recipe(batch_size=args.batch_size, lr=0.05, progress=False, engine="fast")
    return data, folds, recipe


def _model(data, seed: int, width: int):
    torch.manual_seed(seed)
    return build_model(
        "small_cnn", data.num_classes, data.in_channels, data.image_size, width=width
    )


def _train(data, folds, recipe, args, ks) -> None:
    plans = [Plan(_model(data, k, args.width), folds[k], seed=k) for k in ks]
    train_models(plans, data, data.train_targets, recipe, Budget(epochs=args.epochs), record=True)


def sequential(args) -> float:
    data, folds, recipe = _DATA["setup"]
    for k in range(args.folds):
        _train(data, folds, recipe, args, [k])


def vmapped(args) -> None:
    data, folds, recipe = _DATA["setup"]
    _train(data, folds, recipe, args, list(range(args.folds)))


def _worker_init(args, threads: int) -> None:
    torch.set_num_threads(threads)
    _DATA["setup"] = _setup(args)


def _worker(args, k: int) -> None:
    data, folds, recipe = _DATA["setup"]
    _train(data, folds, recipe, args, [k])


def processes(args) -> None:
    threads = max(1, torch.get_num_threads() // args.processes)
    with ProcessPoolExecutor(
        max_workers=args.processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(args, threads),
    ) as pool:
        list(pool.map(_worker, [args] * args.folds, range(args.folds)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--root", default=None)
    p.add_argument("--train-subset", type=int, default=10000)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--processes", type=int, default=2, help="0: skip the processes way")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="uncounted runs first")
    p.add_argument("--json", default=None, help="write the results here as JSON")
    args = p.parse_args()

    _DATA["setup"] = _setup(args)
    data, folds, _ = _DATA["setup"]
    samples = args.epochs * sum(len(f) for f in folds)
    ways = {"sequential": sequential, "vmap (one group)": vmapped}
    if args.processes:  # 0: not this way (its start-up dominates a quick check)
        ways[f"{args.processes} processes"] = processes
    speeds: dict[str, list[float]] = {name: [] for name in ways}
    for run in range(args.runs + args.warmup):
        for name, way in ways.items():
            start = time.perf_counter()
            way(args)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if run >= args.warmup:
                speeds[name].append(samples / (time.perf_counter() - start))
    print(describe_hardware())
    workload = (
        f"{args.folds} fold models of {args.dataset} n={len(data.train)} "
        f"({len(folds[0])} samples each), small_cnn width {args.width}, batch {args.batch_size}, "
        f"{args.epochs} epochs, dynamics recorded; {args.runs} runs after {args.warmup} "
        f"warm-up(s), alternating"
    )
    print(f"workload : {workload}")
    base = statistics.median(speeds["sequential"])
    rows = {}
    for name, values in speeds.items():
        med = statistics.median(values)
        runs = [round(v) for v in values]
        print(f"{name:20s} median {med:8.0f} img/s  x{med / base:5.2f}  {runs}")
        rows[name] = {"median_img_s": med, "ratio": med / base, "runs_img_s": values}
    write_json(args.json, {"hardware": hardware_info(), "workload": workload, "ways": rows})


if __name__ == "__main__":
    main()
