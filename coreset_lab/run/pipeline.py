"""One run: check -> data -> protocol (score + select) -> evaluate -> write the run directory.

A run evaluates (trains the target model on the coreset's ground-truth labels and tests it)
unless `evaluate=false`, or `evaluate=auto` (the default) finds no labels or no test split: then
it stops after selection, and its table and results.json say why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig

import coreset_lab
from coreset_lab.data import build_dataset
from coreset_lab.errors import UserError
from coreset_lab.run.checks import Components, check_against_data, check_config
from coreset_lab.run.handoff import write_handoff
from coreset_lab.run.identity import MethodIdentity, identify
from coreset_lab.run.results import format_table, git_commit, write_failure, write_run
from coreset_lab.run.tracking import log_run, tracking
from coreset_lab.services.context import RunContext, open_store

log = logging.getLogger("coreset_lab")


__all__ = ["method_name", "record_failure", "run"]


def method_name(cfg: DictConfig, choices: dict) -> str:
    """The run's label in results and tables (see coreset_lab/run/identity.py)."""
    return identify(cfg, choices).label


def run(cfg: DictConfig, choices: dict | None = None) -> dict:
    choices = choices or {}
    out_dir = Path(cfg.paths.output_dir)
    parts = check_config(cfg)  # every refusal the config alone decides, before any work
    ident = identify(cfg, choices, parts)
    with tracking(cfg, out_dir, job_type=ident.label) as tracker:
        try:
            result = _run(cfg, choices, ident, parts, out_dir)
        except UserError:
            raise
        except Exception as err:  # a crash: leave a record so the report shows "failed", not 0
            record_failure(out_dir, cfg, choices, err)
            raise
        log_run(tracker, result, out_dir)
    return result


def record_failure(out_dir: Path, cfg: DictConfig, choices: dict, err: BaseException) -> None:
    """A failed record carrying the run's identity, so the report files the failure under the
    computation that failed (a config too broken to have one gets the record alone). Best
    effort, like write_failure: never hides the original error."""
    try:
        ident = identify(cfg, choices).as_result()
    except Exception:  # the failure being recorded may be that very config
        ident = {"method": _label_at_another_rate(cfg, choices)}
    write_failure(out_dir, cfg, ident.pop("method", "?"), err, ident)


def _label_at_another_rate(cfg: DictConfig, choices: dict) -> str:
    """A bad prune rate is the usual failure of one job of a sweep; a label never reads the
    rate, so the job is filed under its siblings' label, found at a valid rate."""
    try:
        other = cfg.copy()
        other.selector.prune_rate = 0.5
        return identify(other, choices).label
    except Exception:
        return "?"


def not_evaluated_because(cfg: DictConfig, data) -> str | None:
    """Why a run stops after selection, or None when it evaluates. evaluate=true on data that
    cannot be evaluated is refused before any work (run/checks.py)."""
    if cfg.get("evaluate", "auto") is False:
        return "evaluate=false"
    if not data.labelled:
        return f"dataset {data.name} has no labels"
    if data.test is None:
        return f"dataset {data.name} has no test split"
    return None


def _run(cfg, choices, ident: MethodIdentity, parts: Components, out_dir: Path) -> dict:
    store = open_store(cfg, started=time.time())
    start = time.perf_counter()
    data = build_dataset(**cfg.dataset)
    check_against_data(cfg, parts, data)  # what needs the train set, before any model trains
    ctx = RunContext(parts.spec, data, store, out_dir)
    ctx.ledger.stage_seconds["data"] = time.perf_counter() - start
    protocol = parts.protocol
    selection = protocol(ctx, parts.scorer, parts.selector)
    evaluation, skipped = None, not_evaluated_because(cfg, data)
    if skipped is None:
        with ctx.stage("evaluate"):
            evaluation = ctx.models.evaluate(selection.coreset)
    prune_rate = float(parts.selector.prune_rate) if protocol.selects else 0.0
    result = {
        "status": "ok",
        "method": ident.label,
        "method_id": ident.method_id,
        "cell_id": ident.cell_id,
        "protocol": protocol.name,
        "scorer": choices.get("scorer"),
        "selector": choices.get("selector"),
        "dataset": cfg.dataset.name,
        "model": cfg.model.arch,
        "trainer": choices.get("trainer"),
        "prune_rate": prune_rate,
        "seed": int(cfg.seed),
        "n_train": len(data.train),
        "coreset_size": len(selection.coreset),
        "labelled": data.labelled,
        # a selection-only run (see the module docstring): no target model, no accuracy
        "selection_only": skipped,
        "test_accuracy": evaluation.test_accuracy if evaluation else None,
        "target_steps": evaluation.steps if evaluation else 0,
        "per_class_accuracy": evaluation.per_class_accuracy if evaluation else None,
        "cost": ctx.ledger.as_dict(),
        "stage_seconds": {k: round(v, 3) for k, v in ctx.ledger.stage_seconds.items()},
        "wall_seconds": round(time.perf_counter() - start, 3),
        "artifacts": asdict(store.log),
        "paper": cfg.get("paper"),
        "version": coreset_lab.__version__,
        "git_commit": git_commit(),
        "identity": ident.identity,
        **selection.extra,
    }
    beta = getattr(parts.selector, "beta", None)  # CCS: the β its per-rate table gave
    if beta is not None and "beta" not in selection.extra:
        result["beta"] = float(beta)
    result["outputs"] = _handoff(cfg, result, parts, data, selection, out_dir)
    write_run(out_dir, cfg, result, selection.scores, selection.coreset)
    log.info("results in %s\n%s", out_dir, format_table(result))
    return result


def _handoff(cfg, result: dict, parts: Components, data, selection, out_dir: Path) -> dict:
    """coreset.csv, the subset mapping and the contact sheet (coreset_lab/run/handoff.py)."""
    title = (
        f"{result['method']} on {result['dataset']}, prune rate {result['prune_rate']:g}, "
        f"seed {result['seed']}"
    )
    return write_handoff(
        out_dir,
        data,
        selection,
        title,
        label_free=parts.protocol.label_free,
        scored=selection.scores is not None and parts.selector.uses_scores,
    )
