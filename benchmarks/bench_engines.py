"""Training throughput (images/s) of the fast engine vs the Lightning engine vs a plain PyTorch
DataLoader loop: same model, data, index batches, augmentation and SGD recipe.

The two engines also record per-sample dynamics every epoch (the plain loop does not), so their
ratio to the plain loop is the cost of everything the runner adds. Runs alternate (fast,
Lightning, plain, fast, ...) so that background load hits all alike; the first run of each is a
warm-up and not counted. FLOPs per image come from torch's FlopCounterMode (forward + backward);
on a GPU the achieved rate is also given as a share of the GPU's dense bf16 peak. The first
(warm-up) run of each loop is timed too: it holds torch.compile's compilation and cuDNN's
autotuning.

    python benchmarks/bench_engines.py --dataset fashion_mnist --train-subset 10000 --width 16
    python benchmarks/bench_engines.py --dataset cifar10 --root /data/cifar10 --arch cifar_resnet18
    python benchmarks/bench_engines.py --cifar-sized --arch cifar_resnet18 --width 64 \
        --batch-size 512 --loops fast fast+compile lightning plain --json engines.json  # a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bench_common import (
    describe_hardware,
    flops_per_image,
    hardware_info,
    make_cifar_sized,
    peak_bf16_flops,
    write_json,
)
from coreset_lab.data import build_dataset, collate_batch
from coreset_lab.models import build_model
from coreset_lab.training.budget import Budget
from coreset_lab.training.fit import train_classifier
from coreset_lab.training.module import ClassifierModule
from coreset_lab.training.optim import sgd_with_schedule
from coreset_lab.training.recipe import Recipe
from coreset_lab.training.sampler import EpochSampler


def plain_loop(model, data, recipe: Recipe, epochs: int, seed: int) -> float:
    """The loop a researcher would write: DataLoader over the uint8 set, device transforms."""
    device = recipe.device
    module = ClassifierModule(
        model, data.train_targets, recipe, data.mean, data.std, data.augment, seed
    ).to(device)
    labels = module.labels
    n = len(data.train)
    sampler = EpochSampler(np.arange(n), n, seed)
    loader = DataLoader(
        data.train,
        batch_size=recipe.batch_size,
        sampler=sampler,
        collate_fn=collate_batch,
        num_workers=recipe.num_workers,
        pin_memory=device.type == "cuda",
    )
    opt, sched = sgd_with_schedule(module.parameters(), recipe, epochs * len(loader))
    bf16 = recipe.resolved_precision() == "bf16-mixed"
    _sync(device)
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, idx in loader:
            x = module.augment_batch(module.normalize(x.to(device, non_blocking=True)))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(module.model(x), labels[idx.to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    _sync(device)
    return epochs * n / (time.perf_counter() - start)


def engine_loop(engine: str, compile_: bool = False):
    def run(model, data, recipe: Recipe, epochs: int, seed: int) -> float:
        recipe = dataclasses.replace(recipe, engine=engine, compile=compile_)
        _sync(recipe.device)
        start = time.perf_counter()
        train_classifier(
            model, data, data.train_targets, recipe, Budget(epochs=epochs), seed=seed, record=True
        )
        _sync(recipe.device)
        return epochs * len(data.train) / (time.perf_counter() - start)

    return run


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


LOOPS = {
    "fast": ("fast engine", engine_loop("fast")),
    "fast+compile": ("fast engine + compile", engine_loop("fast", compile_=True)),
    "lightning": ("Lightning engine", engine_loop("lightning")),
    "plain": ("plain DataLoader loop", plain_loop),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--root", default=None)
    p.add_argument("--train-subset", type=int, default=None)
    p.add_argument("--cifar-sized", action="store_true", help="generated CIFAR-10-format data")
    p.add_argument("--cifar-n", type=int, default=50_000, help="its train images (50000)")
    p.add_argument("--arch", default="small_cnn")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--num-workers", type=int, default=0, help="DataLoader workers (plain, Lightning)"
    )
    p.add_argument("--loops", nargs="+", default=["fast", "lightning", "plain"], choices=LOOPS)
    p.add_argument("--compile", action="store_true", help="torch.compile in the fast loop")
    p.add_argument("--json", default=None, help="write the results here as JSON")
    return p.parse_args()


def measure(args, data, recipe: Recipe, model, report) -> None:
    """img/s per loop (runs after a warm-up, alternating), each warm-up's seconds, and any
    loop's error (a loop that fails, torch.compile without a C compiler say, is dropped and
    the others go on); `report(speeds, first, errors)` after every pass, for --json."""
    loops = {k: LOOPS[k] for k in args.loops}
    if args.compile and "fast" in loops:
        loops["fast"] = ("fast engine + compile", engine_loop("fast", compile_=True))
    speeds: dict[str, list[float]] = {name: [] for name, _ in loops.values()}
    first: dict[str, float] = {}
    errors: dict[str, str] = {}
    for run in range(args.runs + 1):  # run 0: warm-up (allocator, cuDNN autotune, compile)
        for name, loop in loops.values():
            if name in errors:
                continue
            start = time.perf_counter()
            try:
                value = loop(model(), data, recipe, args.epochs, run)
            except Exception as err:  # noqa: BLE001 - reported, the other loops go on
                errors[name] = f"{type(err).__name__}: {err}"[:2000]
                print(f"run {run} {name}: FAILED {errors[name]}", flush=True)
                continue
            if run:
                speeds[name].append(value)
            else:
                first[name] = time.perf_counter() - start
            print(f"run {run} {name}: {value:.0f} img/s", flush=True)
        report(speeds, first, errors)


def table(speeds: dict, first: dict, flops: float, peak: float | None) -> dict:
    """Per loop: median img/s, ratio to the first loop that has runs, achieved FLOP/s."""
    measured = {name: v for name, v in speeds.items() if v}
    if not measured:
        return {}
    base = statistics.median(next(iter(measured.values())))
    rows = {}
    for name, values in measured.items():
        med = statistics.median(values)
        rate = med * flops
        rows[name] = {"median_img_s": med, "ratio": med / base, "runs_img_s": values,
                      "achieved_flops": rate, "share_of_bf16_peak": rate / peak if peak else None,
                      "warmup_s": first[name]}  # fmt: skip
    return rows


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        if args.cifar_sized:
            args.dataset, args.root = "cifar10", make_cifar_sized(Path(tmp), args.cifar_n)
        data = build_dataset(args.dataset, root=args.root, train_subset=args.train_subset)
    recipe = Recipe(
        batch_size=args.batch_size, lr=0.05, progress=False, num_workers=args.num_workers
    )

    def model():
        torch.manual_seed(0)
        kwargs = {"width": args.width} if args.arch in ("small_cnn", "cifar_resnet18") else {}
        return build_model(args.arch, data.num_classes, data.in_channels, data.image_size, **kwargs)

    flops, peak = flops_per_image(model(), data, recipe.device), peak_bf16_flops()
    workload = (
        f"{args.dataset} n={len(data.train)} {tuple(data.train.images.shape[1:])}, "
        f"{args.arch} width {args.width}, batch {args.batch_size}, {args.epochs} epoch(s), "
        f"{args.runs} runs after a warm-up, alternating; precision "
        f"{recipe.resolved_precision()}; {flops / 1e6:.1f} MFLOP per image (fwd + bwd)"
    )
    result = {"hardware": hardware_info(), "workload": workload, "flops_per_image": flops}

    def report(speeds, first, errors):
        rows = table(speeds, first, flops, peak)
        result.update(ratio_to=next(iter(rows), None), loops=rows, errors=errors)
        write_json(args.json, result)

    measure(args, data, recipe, model, report)
    print(describe_hardware())
    print(f"workload : {workload}")
    print(f"{'loop':24s} {'median img/s':>12s} {'ratio':>8s}  {'achieved':>12s}  runs")
    for name, r in result["loops"].items():
        share = f" ({r['share_of_bf16_peak']:.1%} of bf16 peak)" if peak else ""
        print(
            f"{name:24s} {r['median_img_s']:12.0f} {r['ratio']:8.3f}  "
            f"{r['achieved_flops'] / 1e9:9.1f} GF/s{share}  "
            f"{[round(v) for v in r['runs_img_s']]}  (warm-up run {r['warmup_s']:.1f} s)"
        )
    for name, err in result["errors"].items():
        print(f"{name:24s} FAILED: {err}")

    if result["errors"]:
        raise SystemExit(1)  # the numbers above stand; the run did not all work


if __name__ == "__main__":
    main()
