"""Run many coreset-lab runs from a script: in this process, or `jobs` at a time in worker
processes that share the cores (one torch thread each on 2 cores), through the runner and the
shared store (paths.store_dir), so table runs later reuse what these built."""

from __future__ import annotations

from collections.abc import Hashable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from coreset_lab.run.config import compose_config
from coreset_lab.run.pipeline import run
from coreset_lab.runtime import quiet_third_party, use_share_of_cores


def run_one(overrides: list[str], out: Path, name: str) -> dict:
    """One run with its directory at out/name; returns its results.json content."""
    quiet_third_party()
    cfg, choices = compose_config([*overrides, f"paths.output_dir={out}/{name}", "logger=none"])
    return run(cfg, choices)


def run_many(runs: dict[Hashable, tuple[list[str], str]], out: Path, jobs: int = 1) -> dict:
    """{key: (overrides, name)} -> {key: result}; list the longest runs first so that the
    workers finish together."""
    if jobs <= 1:
        return {k: run_one(ov, out, name) for k, (ov, name) in runs.items()}
    with ProcessPoolExecutor(jobs, get_context("spawn"), use_share_of_cores, (jobs,)) as pool:
        futures = {k: pool.submit(run_one, ov, out, name) for k, (ov, name) in runs.items()}
        return {k: f.result() for k, f in futures.items()}
