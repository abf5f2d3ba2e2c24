"""How long the exact cosine k-NN graph takes as N grows, and at ImageNet scale (1.28 M x 384).

D2 (its k-NN graph) and TEMI (neighbour pairs) both search every sample against every other:
the cost grows as N^2 d. This times `coreset_lab.clustering.knn` (k = 10) on N x d float32
data with the chosen backends (faiss = faiss-cpu on a machine without faiss-gpu; torch = the
GPU path where there is a GPU), fits t = a * N^p to the measured sizes and extrapolates to
`--target` samples, beside the pure N^2 extrapolation from the largest size.

The data is PCA-like: Gaussian with a decaying spectrum (variance of dimension j ~ 1 / (j + 1)),
as SSL embeddings after PCA are; an exact search costs the same on any data of that shape.

    python benchmarks/bench_knn_scale.py                              # 100k/200k/400k, faiss
    python benchmarks/bench_knn_scale.py --sizes 5000 10000           # a quick check
    python benchmarks/bench_knn_scale.py --backends faiss torch --json knn_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from coreset_lab.clustering import knn
from coreset_lab.clustering.backend import resolve_backend


def pca_like(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = (1.0 / np.sqrt(np.arange(1, d + 1))).astype(np.float32)
    return rng.standard_normal((n, d), dtype=np.float32) * scale


def fit_power(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """(a, p) of t = a * N^p, least squares in log-log (p = 2 if only one size)."""
    if len(sizes) < 2:
        return seconds[0] / sizes[0] ** 2, 2.0
    p, log_a = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return float(np.exp(log_a)), float(p)


def time_knn(x: np.ndarray, k: int, backend: str) -> float:
    start = time.perf_counter()
    knn(x, k, backend=backend)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000, 400_000])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--target", type=int, default=1_281_167, help="N to extrapolate to")
    p.add_argument("--backends", nargs="+", default=["faiss"], choices=["faiss", "torch"])
    p.add_argument("--threads", type=int, default=None, help="faiss OpenMP threads")
    p.add_argument("--json", default=None, help="write the measurements here")
    args = p.parse_args()
    import faiss

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    threads = faiss.omp_get_max_threads()

    rows = []
    for backend in args.backends:
        used = resolve_backend(backend).name
        time_knn(pca_like(2000, args.dim), args.k, backend)  # warm-up: imports, CUDA context
        seconds = []
        for n in args.sizes:
            seconds.append(time_knn(pca_like(n, args.dim), args.k, backend))
            print(f"{used:10s} N={n:>9,d} d={args.dim}: {seconds[-1]:8.2f} s", flush=True)
        a, power = fit_power(args.sizes, seconds)
        quadratic = seconds[-1] * (args.target / args.sizes[-1]) ** 2
        rows.append({"backend": used, "sizes": args.sizes, "seconds": seconds, "power": power,
                     "target": args.target, "extrapolated_fit_s": a * args.target**power,
                     "extrapolated_quadratic_s": quadratic})  # fmt: skip

    print(f"\nk = {args.k}, d = {args.dim}, faiss threads {threads} of {os.cpu_count()} CPUs")
    for r in rows:
        print(
            f"{r['backend']:10s} t ~ N^{r['power']:.2f}; N = {r['target']:,}: "
            f"{r['extrapolated_fit_s'] / 60:.1f} min (fit), "
            f"{r['extrapolated_quadratic_s'] / 60:.1f} min (N^2 from the largest size)"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"k": args.k, "dim": args.dim, "faiss_threads": threads, "rows": rows}, fh, indent=1
            )


if __name__ == "__main__":
    main()
