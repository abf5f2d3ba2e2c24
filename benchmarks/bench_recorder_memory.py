"""Peak memory and time of the dynamics recorder at ImageNet scale (N = 1.28 M samples).

The recorder keeps, per epoch and sample, five statistics (p_label, p_other, loss, p_sqnorm
float32; correct bool) plus `seen`, in host arrays [E, N] that are filled one row per epoch from
device buffers of six floats per sample. This drives the real classes (`Dynamics`,
`EpochBuffers`) through E epochs of random logits in batches and reports the peak of host
allocations (tracemalloc sees numpy's) and of device memory, against the arithmetic.

    python benchmarks/bench_recorder_memory.py --n 1281167 --epochs 60 --classes 1000
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
import torch

from bench_common import describe_hardware
from coreset_lab.dynamics import Dynamics
from coreset_lab.training.recorder import EpochBuffers


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=1_281_167)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--batches", type=int, default=20, help="batches recorded per epoch (timing)")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n, e, c = args.n, args.epochs, args.classes
    labels = torch.randint(0, c, (n,), device=device)
    logits = torch.randn(args.batch_size, c, device=device)  # made once: time the recorder only

    tracemalloc.start()
    start = time.perf_counter()
    dyn = Dynamics.empty(e, n, c)
    add_s, write_s = 0.0, 0.0
    for epoch in range(e):
        buffers = EpochBuffers(n, c, device)
        order = torch.randperm(n, device=device)
        t0 = time.perf_counter()
        for b in range(args.batches):  # a sample of the epoch's batches, for the per-batch cost
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            buffers.add(idx, logits[: len(idx)], labels[idx])
        if device.type == "cuda":
            torch.cuda.synchronize()
        add_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        buffers.write(dyn, epoch)
        write_s += time.perf_counter() - t0
    total = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    expected = e * n * (4 * 4 + 1 + 1)
    print(describe_hardware())
    print(f"workload : N={n:,} samples, E={e} epochs, C={c} classes, batch {args.batch_size}")
    print(f"host arrays       : {expected / 2**30:6.2f} GiB expected (E x N x 18 bytes)")
    print(f"host peak (numpy) : {peak / 2**30:6.2f} GiB measured by tracemalloc")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"process peak RSS  : {rss:6.2f} GiB (Python, torch and the arrays)")
    if device.type == "cuda":
        print(f"device peak       : {torch.cuda.max_memory_allocated() / 2**20:8.1f} MiB")
    else:
        print(f"device buffers    : {6 * 4 * n / 2**20:8.1f} MiB (6 float32 per sample)")
    print(f"per batch of {args.batch_size}: {1e3 * add_s / (e * args.batches):.2f} ms to record")
    print(f"per epoch         : {1e3 * write_s / e:.0f} ms to copy the row to the host arrays")
    print(f"total             : {total:.1f} s")
    logits = e * n * c * 2
    print(
        f"per-epoch logits (TDDS, record_logits) would add {logits / 2**30:,.0f} GiB: "
        "not recorded at this scale"
    )
    recorded = dyn.seen[-1]
    assert recorded.sum() == min(n, args.batches * args.batch_size)
    assert np.isfinite(dyn.p_label[-1][recorded]).all()


if __name__ == "__main__":
    main()
