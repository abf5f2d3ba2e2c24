"""`coreset-lab` / `python -m coreset_lab`: the Hydra entry point.

Bad input the user can fix (UserError) is printed as one line with exit status 2; Hydra's own
errors (unknown config group option, misspelt key) are already one message with exit status 1.
In a multirun a bad job is recorded as failed (results.json status "failed") and the sweep goes
on; the sweep then exits with status 2 (local launcher: jobs run in this process; under a
submitit launcher each job runs in its own process and only its record and log say it failed).

SIGTERM (SLURM's notice before SIGKILL, `kill`) and Ctrl-C stop a run with one line saying what
was interrupted and exit status 143 / 130; finished artifacts and training checkpoints stay in the
store, so the same command resumes.
"""

from __future__ import annotations

import errno
import logging
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from coreset_lab.errors import UserError
from coreset_lab.run.config import CONF_DIR, moved_spelling
from coreset_lab.runtime import quiet_third_party, use_share_of_cores

log = logging.getLogger("coreset_lab")
# Run directories of the jobs of this process' multirun that failed with a UserError.
_FAILED_JOBS: list[str] = []


def share_cores(hydra_cfg) -> None:
    """A job of a local-processes sweep uses its share of the cores (n_jobs run at once)."""
    n_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs")
    if hydra_cfg.mode == RunMode.MULTIRUN and isinstance(n_jobs, int) and n_jobs > 0:
        threads = use_share_of_cores(n_jobs)
        log.info("sweep job: %d torch thread(s), %d job(s) at once", threads, n_jobs)


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception: it unwinds like Ctrl-C, past `except Exception` handlers that
    would record a failure, so nothing finished is discarded and nothing half-built is kept."""


def _raise_terminated(signum, frame) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    choices = dict(hydra_cfg.runtime.choices)
    share_cores(hydra_cfg)
    try:
        from coreset_lab.run.pipeline import run  # heavy imports after Hydra has parsed --help etc.

        quiet_third_party()
        return run(cfg, choices)["test_accuracy"]
    except KeyboardInterrupt as err:
        store = cfg.paths.store_dir if cfg.get("cache", True) else None
        interrupted(err, hydra_cfg.runtime.output_dir, store)
    except UserError as err:
        job_failed(cfg, choices, err, one_line(err))
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        job_failed(
            cfg,
            choices,
            err,
            f"no space left on the device while writing {err.filename or 'results'}: free some "
            f"space or point paths.store_dir / hydra.run.dir elsewhere; finished artifacts in "
            f"{cfg.paths.store_dir} are intact and will be reused",
        )
    return None


def one_line(err: UserError) -> str:
    """A UserError raised in a DataLoader worker arrives wrapped with the worker's traceback."""
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split("UserError: ", 1)[-1]
    return text


def log_to_file(message: str) -> None:
    """The error into the run's log file only: the console gets it once, as `coreset-lab:
    error: ...` (Hydra's console handler would print it a second time)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in logging.getLogger().handlers + log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def fail(message: str) -> None:
    log_to_file(message)
    print(f"coreset-lab: error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


def job_failed(cfg: DictConfig, choices: dict, err: Exception, message: str) -> None:
    """A single run ends here (`fail`). One job of a multirun must not end the sweep: it leaves
    a failed record, as a crashed job does, and `main` reports it when the sweep is over."""
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        fail(message)
    out_dir = str(cfg.paths.output_dir)
    _record_failure(Path(out_dir), cfg, choices, err)
    _FAILED_JOBS.append(out_dir)
    log_to_file(message)
    print(f"coreset-lab: error: {message} ({out_dir})", file=sys.stderr)


def _record_failure(out_dir: Path, cfg: DictConfig, choices: dict, err: Exception) -> None:
    from coreset_lab.run.pipeline import record_failure

    record_failure(out_dir, cfg, choices, err)


def interrupted(err: KeyboardInterrupt, run_dir: str | None, store_dir: str | None) -> None:
    """One line for the log and stderr, then exit 128 + the signal number (the shells' code).
    `store_dir` None: caching was off."""
    signum = signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT
    what = f"run {run_dir}" if run_dir else "coreset-lab"
    building = getattr(err, "building", None)  # set by Store.get_or_build on the way out
    if building:
        what += f" (while building a {building} artifact)"
    message = f"interrupted by {signum.name}: {what} stopped"
    if run_dir and store_dir:
        message += (
            f"; rerunning the same command resumes from the finished artifacts and training "
            f"checkpoints in {store_dir}"
        )
    elif run_dir:
        message += "; with cache=false nothing was kept, a rerun starts over"
    if run_dir:
        log_to_file(message)  # the run's log; before a run there is no log to write to
    print(f"coreset-lab: {message}", file=sys.stderr)
    raise SystemExit(128 + signum) from None


def missing_scheduler(args: list[str]) -> str | None:
    """A SLURM launcher asked for on a machine without SLURM (submitit's own error is a
    30-line traceback)."""
    import shutil

    launcher = next((a.split("=", 1)[1] for a in args if a.startswith("hydra/launcher=")), "")
    if launcher.startswith("slurm") and shutil.which("sbatch") is None:
        return (
            f"hydra/launcher={launcher} submits SLURM jobs, but this machine has no `sbatch`: run "
            f"it on a SLURM login node, or sweep here with hydra/launcher=local_processes"
        )
    return None


def main() -> None:
    from coreset_lab.app import sweep_summary

    signal.signal(signal.SIGTERM, _raise_terminated)
    _FAILED_JOBS.clear()
    sweep_summary.FAILED.clear()
    if refusal := moved_spelling(sys.argv[1:]) or missing_scheduler(sys.argv[1:]):
        print(f"coreset-lab: {refusal}", file=sys.stderr)
        raise SystemExit(2)
    try:
        _main()
    except BrokenPipeError:  # `coreset-lab --help | head`: the reader left, nothing is wrong
        sys.stderr.close()
    except KeyboardInterrupt as err:  # before a run started (Hydra composing, imports)
        interrupted(err, None, None)
    # Jobs in this process (basic launcher) report here; jobs in workers or on other nodes only
    # through their records, which the sweep summary read.
    failed = list(
        dict.fromkeys(str(Path(d).resolve()) for d in _FAILED_JOBS + sweep_summary.FAILED)
    )
    if failed:
        print(
            f"coreset-lab: {len(failed)} job(s) of the sweep failed or left no results "
            f"(results.json): {', '.join(failed)}",
            file=sys.stderr,
        )
        raise SystemExit(2)


if __name__ == "__main__":
    main()
