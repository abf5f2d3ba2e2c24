"""Scoring models trained in spawned worker processes that share the run's store.

Each worker rebuilds the run's context from its `RunSpec` (plain values: Hydra's resolvers are
not available in a spawned process) and trains the jobs it is given through the same model
service; the parent then reads every model from the store.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_WORKER: dict = {}


def _worker_init(context: type, spec, store: dict, out_dir: str, threads: int, parent: int) -> None:
    """`context`: the run context's class, handed over by the parent (so that nothing here
    imports back into the services that call this module); `spec`: its RunSpec."""
    _exit_with_parent(parent)
    # Ctrl-C reaches the whole process group: the parent handles it and ends the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch
    from tqdm import tqdm

    from coreset_lab.data import build_dataset
    from coreset_lab.runtime import quiet_third_party
    from coreset_lab.store.artifacts import ArtifactStore

    # tqdm's default lock holds a multiprocessing semaphore, which a terminated worker leaves to
    # the resource tracker (a "leaked semaphore" warning on stderr); a thread lock does here.
    tqdm.set_lock(threading.RLock())
    torch.set_num_threads(threads)
    quiet_third_party()
    data = build_dataset(**spec.dataset)
    _WORKER["ctx"] = context(spec, data, ArtifactStore(**store), Path(out_dir))


def _exit_with_parent(parent: int) -> None:
    """A parent killed outright (OOM killer, SIGKILL) cannot end its workers: they would train on
    as orphans, holding their memory and keeping multiprocessing's resource tracker alive. Once
    the parent is gone the worker is re-parented, so a daemon thread watching getppid() ends it.
    (prctl's PDEATHSIG would be quicker but fires when the spawning *thread* ends, and is Linux
    only.)"""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # a half-built artifact stays in its .partial directory for a rerun

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_train(job) -> tuple[list[str], int]:
    """Train one ScoringJob in this worker's context."""
    ctx = _WORKER["ctx"]
    before, n_before = len(ctx.store.built), ctx.ledger.models_built_here
    ctx.models.get(job)
    return ctx.store.built[before:], ctx.ledger.models_built_here - n_before


def train_in_processes(ctx, jobs: list, workers: int) -> tuple[list[str], int]:
    """Train `jobs` in `workers` spawned processes sharing the store; returns the keys they
    built and how many models. Ctrl-C, SIGTERM or a failed model ends every worker at once."""
    import torch

    n = min(workers, len(jobs))
    threads = max(1, torch.get_num_threads() // n)
    store = ctx.store.settings()
    init = (type(ctx), ctx.spec.for_worker(), store, str(ctx.out_dir), threads, os.getpid())
    log.info("training %d scoring models in %d processes", len(jobs), n)
    built: list[str] = []
    count = 0
    pool = ProcessPoolExecutor(  # its workers start on submit
        max_workers=n,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=init,
    )
    try:
        with _sigint_blocked():
            futures = [pool.submit(_worker_train, j) for j in jobs]
        for fut in futures:
            keys, k = fut.result()
            built += keys
            count += k
    except BaseException:
        # A failed model, Ctrl-C or SIGTERM: end the other workers now; leaving the pool the
        # usual way would wait for each of them to finish training.
        _terminate(pool)
        raise
    pool.shutdown()
    return built, count


@contextmanager
def _sigint_blocked():
    """SIGINT blocked in this thread; a Ctrl-C meanwhile is delivered at the end, not lost.
    Processes started here inherit the mask, so a Ctrl-C (sent to the whole process group)
    cannot interrupt a worker before its initializer ignores SIGINT."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's workers at once (SIGTERM); what they finished is in the store."""
    processes = list((pool._processes or {}).values())  # no public handle before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    for p in processes:
        p.join(timeout=10)
