"""Progress of long steps (trainings, embedding, decoding): a bar on a terminal, lines in the log.

Under SLURM or nohup stderr is a file, where a tqdm bar is either nothing (disabled) or one
endless line of carriage returns. There the run's log gets a line when a step starts, one every
`EVERY_SECONDS` while it runs (done / total, rate, time left) and one when it ends, so a job's log
shows what it is doing. The start and end lines are written in every mode: they name what is
trained (proxy, fold k, stage, target, β trial) and how long it took.

`mode(setting)` reads the `progress` option of trainer and encoder configs: true = bar, false =
no bar and no periodic lines, auto = bar on a terminal, lines otherwise.
"""

from __future__ import annotations

import logging
import sys
import time

from pytorch_lightning import Callback

log = logging.getLogger("coreset_lab")

EVERY_SECONDS = 30.0
MODES = ("bar", "lines", "off")


def mode(setting: bool | str = "auto") -> str:
    if setting == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return "bar" if setting is True else "off"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """`with Progress("training proxy: 15 epochs of 1347 samples", total) as p: p.update(n)`;
    `what` names the step and its size (the start line is `what` alone)."""

    def __init__(
        self,
        what: str,
        total: int,
        unit: str = "step",
        show: str = "auto",
        initial: int = 0,
        every: float = EVERY_SECONDS,
    ):
        self.what, self.total, self.unit, self.every = what, int(total), unit, every
        self.show = show if show in MODES else mode(show)
        self.done = self.start_done = int(initial)
        self.bar = None

    def __enter__(self) -> Progress:
        self.started = self.last = time.perf_counter()
        resumed = f" (resuming at {self.unit} {self.done} of {self.total})" if self.done else ""
        log.info("%s%s", self.what, resumed)
        if self.show == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, desc=self.what[:60],
                            unit=self.unit, leave=False)  # fmt: skip
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if self.show == "lines" and now - self.last >= self.every and self.done < self.total:
            self.last = now
            log.info("%s: %s", self.what, self._status(now))

    def _status(self, now: float) -> str:
        elapsed = now - self.started
        rate = (self.done - self.start_done) / max(elapsed, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.done / max(self.total, 1)
        eta = _duration(left) if left == left else "?"
        return (
            f"{self.done}/{self.total} {self.unit}s ({pct:.0f}%), {rate:.1f} {self.unit}s/s, "
            f"{_duration(elapsed)} so far, about {eta} left"
        )

    def __exit__(self, kind, value, tb) -> None:
        if self.bar is not None:
            self.bar.close()
        if kind is None:
            elapsed = time.perf_counter() - self.started
            log.info("%s: done, %d %ss in %s", self.what, self.done, self.unit, _duration(elapsed))


class ProgressLines(Callback):
    """The fast engine's start, end and (in a log) periodic lines for a Lightning training of
    `total` steps; on a terminal (`show` bar) Lightning draws its own bar instead."""

    def __init__(self, what: str, total: int, show: str):
        self.progress = Progress(what, total, show="off" if show == "bar" else show)

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.progress.done = self.progress.start_done = trainer.global_step
            self.progress.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero:
            self.progress.update(1)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.progress.__exit__(None, None, None)
