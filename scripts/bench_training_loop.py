"""Images/s of coreset-lab's Lightning training loop vs a plain PyTorch loop, same model and data.

Both loops draw the same index batches from the same in-memory uint8 tensor, normalise and augment
on the device, and run SGD with the same settings; the Lightning side also records per-sample
dynamics (the plain loop does not), so the ratio is the cost of everything the runner adds.
Runs alternate (A, B, A, B, ...) so background load hits both alike.

    python scripts/bench_training_loop.py --dataset fashion_mnist --width 16 --epochs 1 --runs 3
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from coreset_lab.data import build_dataset, collate_batch
from coreset_lab.models import build_model
from coreset_lab.training.augment import augment, normalize
from coreset_lab.training.fit import Budget, train_classifier
from coreset_lab.training.recipe import Recipe
from coreset_lab.training.sampler import EpochSampler


def plain_loop(model, data, recipe: Recipe, epochs: int, seed: int) -> float:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device).train()
    mean = torch.tensor(data.mean, device=device)
    std = torch.tensor(data.std, device=device)
    labels = torch.as_tensor(data.train_targets, device=device)
    n = len(data.train)
    sampler = EpochSampler(np.arange(n), n, seed)
    loader = DataLoader(
        data.train, batch_size=recipe.batch_size, sampler=sampler, collate_fn=collate_batch
    )
    opt = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )
    total = epochs * math.ceil(n / recipe.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total, eta_min=recipe.min_lr)
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for x, idx in loader:
            x = normalize(x.to(device, non_blocking=True), mean, std)
            x = augment(x, data.augment.crop_pad, data.augment.flip)
            loss = F.cross_entropy(model(x), labels[idx.to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return epochs * n / (time.perf_counter() - start)


def lightning_loop(model, data, recipe: Recipe, epochs: int, seed: int) -> float:
    fit = train_classifier(
        model, data, data.train_targets, recipe, Budget(epochs=epochs), seed=seed, record=True
    )
    return epochs * len(data.train) / fit.seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--arch", default="small_cnn")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-subset", type=int, default=None)
    args = p.parse_args()

    data = build_dataset(args.dataset, train_subset=args.train_subset)
    recipe = Recipe(batch_size=args.batch_size, lr=0.05, progress=False)
    pl.seed_everything(0, verbose=False)

    def model():
        torch.manual_seed(0)
        return build_model(
            args.arch, data.num_classes, data.in_channels, data.image_size, width=args.width
        )

    plain_loop(model(), data, recipe, 1, 0)  # warm-up (allocator, kernels)
    plain, light = [], []
    for run in range(args.runs):
        plain.append(plain_loop(model(), data, recipe, args.epochs, run))
        light.append(lightning_loop(model(), data, recipe, args.epochs, run))
    med_p, med_l = statistics.median(plain), statistics.median(light)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor()
    print(f"hardware : {device or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"versions : torch {torch.__version__}, lightning {pl.__version__}")
    print(
        f"workload : {args.dataset} n={len(data.train)}, {args.arch} width {args.width}, "
        f"batch {args.batch_size}, {args.epochs} epoch(s) x {args.runs} runs (alternating)"
    )
    print(f"plain PyTorch loop    : median {med_p:8.0f} img/s  runs {[round(v) for v in plain]}")
    print(f"Lightning + recorder  : median {med_l:8.0f} img/s  runs {[round(v) for v in light]}")
    print(f"ratio Lightning/plain : {med_l / med_p:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
