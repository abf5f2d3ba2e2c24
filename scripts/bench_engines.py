"""Training throughput (images/s) of the fast engine vs the Lightning engine vs a plain PyTorch
DataLoader loop: same model, data, index batches, augmentation and SGD recipe.

The two engines also record per-sample dynamics every epoch (the plain loop does not), so their
ratio to the plain loop is the cost of everything the runner adds. Runs alternate (fast,
Lightning, plain, fast, ...) so that background load hits all alike; the first run of each is a
warm-up and not counted. FLOPs per image come from torch's FlopCounterMode (forward + backward);
on a GPU the achieved rate is also given as a share of the GPU's dense bf16 peak.

    python scripts/bench_engines.py --dataset fashion_mnist --train-subset 10000 --width 16
    python scripts/bench_engines.py --dataset cifar10 --root /data/cifar10 --arch cifar_resnet18
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bench_common import describe_hardware, flops_per_image, peak_bf16_flops
from coreset_lab.data import build_dataset, collate_batch
from coreset_lab.models import build_model
from coreset_lab.training.budget import Budget
from coreset_lab.training.fit import train_classifier
from coreset_lab.training.module import ClassifierModule, sgd_with_schedule
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


def engine_loop(engine: str):
    def run(model, data, recipe: Recipe, epochs: int, seed: int) -> float:
        recipe = dataclasses.replace(recipe, engine=engine)
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--root", default=None)
    p.add_argument("--train-subset", type=int, default=None)
    p.add_argument("--arch", default="small_cnn")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--num-workers", type=int, default=0, help="DataLoader workers (plain, Lightning)"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile in the fast engine")
    args = p.parse_args()

    data = build_dataset(args.dataset, root=args.root, train_subset=args.train_subset)
    recipe = Recipe(
        batch_size=args.batch_size,
        lr=0.05,
        progress=False,
        num_workers=args.num_workers,
        compile=args.compile,
    )

    def model():
        torch.manual_seed(0)
        kwargs = {"width": args.width} if args.arch in ("small_cnn", "cifar_resnet18") else {}
        return build_model(args.arch, data.num_classes, data.in_channels, data.image_size, **kwargs)

    loops = {"fast engine": engine_loop("fast"), "Lightning engine": engine_loop("lightning"),
             "plain DataLoader loop": plain_loop}  # fmt: skip
    speeds: dict[str, list[float]] = {name: [] for name in loops}
    for run in range(args.runs + 1):  # run 0: warm-up (allocator, cuDNN autotune, compile)
        for name, loop in loops.items():
            value = loop(model(), data, recipe, args.epochs, run)
            if run:
                speeds[name].append(value)
    flops = flops_per_image(model(), data, recipe.device)
    peak = peak_bf16_flops()
    print(describe_hardware())
    print(
        f"workload : {args.dataset} n={len(data.train)} {tuple(data.train.images.shape[1:])}, "
        f"{args.arch} width {args.width}, batch {args.batch_size}, {args.epochs} epoch(s), "
        f"{args.runs} runs after a warm-up, alternating; precision "
        f"{recipe.resolved_precision()}; {flops / 1e6:.1f} MFLOP per image (fwd + bwd)"
    )
    base = statistics.median(speeds["fast engine"])
    print(f"{'loop':24s} {'median img/s':>12s} {'vs fast':>8s}  {'achieved':>12s}  runs")
    for name, values in speeds.items():
        med = statistics.median(values)
        rate = med * flops
        share = f" ({rate / peak:.1%} of bf16 peak)" if peak else ""
        print(
            f"{name:24s} {med:12.0f} {med / base:8.3f}  {rate / 1e9:9.1f} GF/s{share}  "
            f"{[round(v) for v in values]}"
        )


if __name__ == "__main__":
    main()
