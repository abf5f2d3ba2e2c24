"""The machine a check ran on, as JSON: GPU, driver, torch/CUDA/cuDNN, faiss build, libraries.

Every probe is guarded: a missing library or a broken CUDA setup is reported, never fatal, so
the environment is known even when nothing else can run.

    python benchmarks/gpu_env.py [--json env.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# Distributions whose version is read from their metadata (importing them all, wandb and
# Lightning above all, would take seconds); the few whose import itself matters are imported.
DISTRIBUTIONS = (
    "torch", "torchvision", "pytorch-lightning", "lightning", "timm", "numpy", "scipy",
    "scikit-learn", "matplotlib", "hydra-core", "omegaconf", "faiss-cpu", "faiss-gpu",
    "faiss-gpu-cu12", "submitit", "hydra-submitit-launcher", "wandb", "triton",
)  # fmt: skip
IMPORTED = ("hydra", "omegaconf", "faiss")
SMI_FIELDS = "name,driver_version,memory.total,power.limit,clocks.max.sm,pcie.link.gen.current"


def probe(fn):
    """fn()'s value, or {"error": ...} if it raised (a probe never stops the others)."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - reported, not handled
        return {"error": f"{type(err).__name__}: {err}"}


def versions() -> dict:
    out = {}
    for name in DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def imports() -> dict:
    out = {}
    for name in IMPORTED:
        try:
            importlib.import_module(name)
            out[name] = "ok"
        except Exception as err:  # noqa: BLE001 - ImportError, or a broken install
            out[name] = f"{type(err).__name__}: {err}"[:200]
    return out


def nvidia_smi() -> dict:
    if shutil.which("nvidia-smi") is None:
        return {"error": "nvidia-smi not found"}
    query = ["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader"]
    text = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
    return {"gpus": [dict(zip(SMI_FIELDS.split(","), (v.strip() for v in line.split(",")),
                              strict=False)) for line in text.splitlines()]}  # fmt: skip


def torch_cuda() -> dict:
    import torch

    info = {"cuda_build": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "available": torch.cuda.is_available()}  # fmt: skip
    if info["available"]:
        props = torch.cuda.get_device_properties(0)
        info.update(
            device=torch.cuda.get_device_name(0),
            count=torch.cuda.device_count(),
            capability=list(torch.cuda.get_device_capability(0)),
            memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            bf16=torch.cuda.is_bf16_supported(),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            tf32_cudnn=torch.backends.cudnn.allow_tf32,
        )
    return info


def faiss_build() -> dict:
    import faiss

    gpu = hasattr(faiss, "StandardGpuResources")
    return {"version": faiss.__version__, "gpu_support": gpu,
            "gpus": faiss.get_num_gpus() if gpu else 0}  # fmt: skip


def clustering_backend() -> str:
    from coreset_lab.clustering.backend import resolve_backend

    return resolve_backend("auto").name


def peak() -> float | None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_common import peak_bf16_flops

    return peak_bf16_flops()


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "compiler": {
            cc: shutil.which(cc) for cc in ("gcc", "cc", "g++")
        },  # torch.compile needs one
        "nvidia_smi": probe(nvidia_smi),
        "torch_cuda": probe(torch_cuda),
        "faiss": probe(faiss_build),
        "clustering_backend": probe(clustering_backend),
        "bf16_peak_flops": probe(peak),
        "libraries": probe(versions),
        "imports": probe(imports),
        "env": {
            k: os.environ.get(k)
            for k in ("PYTHONPATH", "FASHION_MNIST_ROOT", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")
        },  # fmt: skip
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    info = environment()
    text = json.dumps(info, indent=1, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
