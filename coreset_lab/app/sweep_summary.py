"""The table a sweep prints at its end: every job, its status and its accuracy.

A Hydra callback (conf/hydra/default.yaml) in the process that launched the sweep. Jobs may have
run elsewhere (local_processes: joblib workers; SLURM: other nodes), so it reads what each left
on disk: the job directories under `hydra.sweep.dir` (those with a `.hydra/overrides.yaml`) and
their results.json. A job without one crashed before writing it, or is still running.

Kept light (no torch): Hydra instantiates it before every run and sweep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hydra.experimental.callback import Callback

# The directories of the jobs of the last sweep that failed or left no results (cli.py exits
# with status 2 when there are any).
FAILED: list[str] = []


@dataclass
class Job:
    directory: Path
    overrides: list[str]
    result: dict | None

    @property
    def status(self) -> str:
        return "no results" if self.result is None else str(self.result.get("status", "?"))

    @property
    def accuracy(self) -> str:
        if self.result is None or self.result.get("status") != "ok":
            return "-"
        acc = self.result.get("test_accuracy")
        return "not evaluated" if acc is None else f"{100 * acc:.2f}%"


def _overrides(job_dir: Path) -> list[str]:
    lines = (job_dir / ".hydra" / "overrides.yaml").read_text().splitlines()
    return [line.removeprefix("- ").strip() for line in lines if line.strip()]


def _result(job_dir: Path) -> dict | None:
    try:
        return json.loads((job_dir / "results.json").read_text())
    except (OSError, ValueError):
        return None


def _order(path: Path):
    name = path.name
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def gather(sweep_dir: Path) -> list[Job]:
    dirs = sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")}, key=_order)
    return [Job(d, _overrides(d), _result(d)) for d in dirs]


def format_summary(sweep_dir: Path, jobs: list[Job]) -> str:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    shared = set.intersection(*(set(j.overrides) for j in jobs))  # said once, in the header
    rows = [("job", "status", "test accuracy", "method", "overrides")]
    for job in jobs:
        method = (job.result or {}).get("method", "-")
        own = " ".join(o for o in job.overrides if o not in shared)
        rows.append((job.directory.name, job.status, job.accuracy, str(method), own))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
             for r in rows]  # fmt: skip
    errors = [
        f"job {j.directory.name}: {j.result.get('error', '')}"
        for j in jobs
        if j.result is not None and j.status == "failed"
    ]
    header = f"sweep {sweep_dir}: {len(jobs)} job(s): {tally}"
    if shared:
        header += f"\nevery job: {' '.join(o for o in jobs[0].overrides if o in shared)}"
    return "\n".join([header, *lines, *errors])


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        jobs = gather(sweep_dir)
        FAILED[:] = [str(j.directory) for j in jobs if j.status != "ok"]
        if jobs:
            print(format_summary(sweep_dir, jobs), flush=True)
