"""Process set-up shared by the entry points, sweep jobs and worker processes: the cores a process
may use and quiet third-party loggers (a leaf: imports nothing of coreset_lab)."""

from __future__ import annotations

import logging
import os
import warnings

from omegaconf import OmegaConf


def cpu_count() -> int:
    """The cores this process may use (a SLURM allocation or taskset, not the whole node)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# ${cpu_count:} in configs: the launcher's default number of concurrent jobs.
OmegaConf.register_new_resolver("cpu_count", cpu_count, replace=True)


def use_share_of_cores(n_jobs: int) -> int:
    """This process is one of `n_jobs` running at once: torch gets cores / n_jobs threads."""
    import torch

    torch.set_num_threads(max(1, cpu_count() // n_jobs))
    return torch.get_num_threads()


def quiet_third_party() -> None:
    # faiss' loader logs every CPU-specific build it could not import before the one it uses.
    for name in (
        "pytorch_lightning",
        "lightning",
        "lightning.pytorch",
        "lightning_fabric",
        "faiss.loader",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
