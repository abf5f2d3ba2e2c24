"""One run: data -> protocol (score + select) -> evaluate -> write the run directory."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

import coreset_lab
from coreset_lab.context import RunContext
from coreset_lab.data import build_dataset
from coreset_lab.errors import UserError
from coreset_lab.evaluate import evaluate_coreset
from coreset_lab.protocols import get_protocol
from coreset_lab.results import format_table, git_commit, write_failure, write_run
from coreset_lab.store import ArtifactStore
from coreset_lab.tracking import log_run, tracking

log = logging.getLogger("coreset_lab")


def method_name(cfg: DictConfig, choices: dict) -> str:
    if cfg.get("method_name"):
        return str(cfg.method_name)
    if cfg.protocol.name == "full":
        return "full"
    scorer, selector = choices.get("scorer", "?"), choices.get("selector", "?")
    if scorer == "random" or selector == "random":
        return "random"
    if selector == "topk":
        suffix = "" if cfg.selector.get("keep", "hard") == "hard" else "-easy"
        return f"{scorer}{suffix}" + ("-balanced" if cfg.selector.get("class_balanced") else "")
    return f"{selector}({scorer})"


def build(node: DictConfig):
    """instantiate(), but a UserError raised by the constructor reaches the user as itself."""
    try:
        return instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, UserError):
            raise err.__cause__ from None
        raise


def run(cfg: DictConfig, choices: dict | None = None) -> dict:
    out_dir = Path(cfg.paths.output_dir)
    scorer, selector = build(cfg.scorer), build(cfg.selector)  # validate before work
    protocol = get_protocol(cfg.protocol.name)
    method = method_name(cfg, choices or {})
    with tracking(cfg, out_dir, job_type=method) as tracker:
        try:
            result = _run(cfg, choices or {}, method, scorer, selector, protocol, out_dir)
        except UserError:
            raise
        except Exception as err:  # a crash: leave a record so the report shows "failed", not 0
            write_failure(out_dir, cfg, method, err)
            raise
        log_run(tracker, result, out_dir)
    return result


def _run(cfg, choices, method, scorer, selector, protocol, out_dir: Path) -> dict:
    store = ArtifactStore(cfg.paths.store_dir if cfg.get("cache", True) else None)
    start = time.perf_counter()
    data = build_dataset(**cfg.dataset)
    ctx = RunContext(cfg, data, store, out_dir)
    ctx.ledger.stage_seconds["data"] = time.perf_counter() - start
    selection = protocol(ctx, scorer, selector)
    with ctx.stage("evaluate"):
        evaluation = evaluate_coreset(ctx, selection.coreset)
    prune_rate = 0.0 if cfg.protocol.name == "full" else float(cfg.selector.prune_rate)
    result = {
        "status": "ok",
        "method": method,
        "protocol": cfg.protocol.name,
        "scorer": choices.get("scorer"),
        "selector": choices.get("selector"),
        "dataset": cfg.dataset.name,
        "model": cfg.model.arch,
        "trainer": choices.get("trainer"),
        "prune_rate": prune_rate,
        "seed": int(cfg.seed),
        "n_train": len(data.train),
        "coreset_size": len(selection.coreset),
        "test_accuracy": evaluation.test_accuracy,
        "target_steps": evaluation.steps,
        "cost": ctx.ledger.as_dict(),
        "stage_seconds": {k: round(v, 3) for k, v in ctx.ledger.stage_seconds.items()},
        "wall_seconds": round(time.perf_counter() - start, 3),
        "artifacts": {"built": store.built, "reused": store.reused},
        "paper": cfg.get("paper"),
        "version": coreset_lab.__version__,
        "git_commit": git_commit(),
        **selection.extra,
    }
    write_run(out_dir, cfg, result, selection.scores, selection.coreset)
    log.info("results in %s\n%s", out_dir, format_table(result))
    return result
