"""Multi-step (incremental) selection: grow the coreset in stages of a schedule.

Stage 1 picks m_1 samples from the held-out scores; every later stage t scores the samples not
yet selected with models trained on the current coreset (so never on the samples they score) and
adds m_t - m_{t-1} of them, until the budget m_T is reached exactly.

"Add the top ones" uses the run's own selector on the candidate pool with the stage's budget:
with `selector=topk` that is the k hardest (keep=hard) or easiest (keep=easy) unselected samples,
class-balanced if the selector is. With `class_aware`, each stage's budget is first split over
the classes in proportion to their error (see `allocate`), then the selector picks inside each
class. This module is pure numpy: the models are behind the `score_stage` callback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.selection.budget import Selector

SCHEDULES = ("linear", "geometric")


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def stage_sizes(budget: int, stages: int, initial_fraction: float, schedule: str) -> list[int]:
    """Cumulative coreset sizes m_1 < m_2 < ... < m_T = budget after each stage.

    m_1 = round(initial_fraction * budget) (at least 1). For T > 1:
      linear:    equal additions, m_t = m_1 + round((budget - m_1) * (t - 1) / (T - 1));
      geometric: sizes grow by a constant factor, m_t ~ m_1 * (budget / m_1) ** ((t-1)/(T-1)),
                 so the additions grow from stage to stage (rounded, each addition >= 1).
    T = 1 is pure held-out selection: [budget], whatever initial_fraction says.
    """
    if stages == 1:
        return [int(budget)]
    m1 = max(1, _round_half_up(initial_fraction * budget))
    if budget - m1 < stages - 1:
        raise UserError(
            f"protocol.stages={stages} needs at least {stages - 1} samples to add after the "
            f"initial coreset of {m1} (protocol.initial_fraction={initial_fraction} of the budget "
            f"of {budget}); lower protocol.stages or protocol.initial_fraction"
        )
    steps = stages - 1
    if schedule == "linear":
        sizes = [m1 + _round_half_up((budget - m1) * t / steps) for t in range(stages)]
    elif schedule == "geometric":
        ratio = (budget / m1) ** (1.0 / steps)
        sizes = [m1] + [_round_half_up(m1 * ratio**t) for t in range(1, steps)] + [budget]
        for t in range(1, stages):  # at least one sample per stage ...
            sizes[t] = max(sizes[t], sizes[t - 1] + 1)
        for t in range(stages - 2, -1, -1):  # ... without overshooting the budget
            sizes[t] = min(sizes[t], sizes[t + 1] - 1)
    else:
        raise UserError(
            f"protocol.schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}"
        )
    assert sizes[0] == m1 and sizes[-1] == budget and all(np.diff(sizes) > 0), sizes
    return [int(s) for s in sizes]


def allocate(weights: np.ndarray, caps: np.ndarray, total: int) -> np.ndarray:
    """Integers q_c <= caps_c summing exactly to `total`, proportional to `weights`.

    Classes whose proportional share reaches their cap get the cap and drop out; the rest is
    shared again among the others (water filling), and the final shares are rounded by largest
    remainder (ties to the lower class). When every class still open has weight 0, the rest is
    shared in proportion to the caps (the samples available).
    """
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    caps = np.asarray(caps, dtype=np.int64)
    if not 0 <= total <= int(caps.sum()):
        raise ValueError(f"cannot allocate {total} samples over classes holding {int(caps.sum())}")
    quota = np.zeros_like(caps)
    open_ = caps > 0
    remaining = int(total)
    while remaining > 0:
        w = np.where(open_, weights, 0.0)
        if w.sum() <= 0:
            w = np.where(open_, caps - quota, 0).astype(np.float64)
        share = remaining * w / w.sum()
        full = open_ & (share >= caps - quota)
        if full.any():
            remaining -= int((caps - quota)[full].sum())
            quota[full] = caps[full]
            open_ &= ~full
            continue
        base = np.floor(share).astype(np.int64)
        short = remaining - int(base.sum())
        frac = np.where(open_, share - base, -1.0)
        base[np.argsort(-frac, kind="stable")[:short]] += 1  # share < cap, so +1 fits
        quota += base
        remaining = 0
    assert int(quota.sum()) == total and np.all(quota <= caps), (quota, caps, total)
    return quota


@dataclass
class StageScores:
    """Scores of one stage (float64 [N], finite at least on the candidate pool) and, for
    class-aware budgets, the error of the scoring models per class (aligned with the sorted
    unique labels)."""

    scores: np.ndarray
    class_error: np.ndarray | None = None


@dataclass
class IncrementalResult:
    coreset: np.ndarray  # sorted int64
    stage_of: np.ndarray  # int64 [N]: the stage (1-based) that added the sample, 0 = never
    sizes: list[int]
    quotas: list[list[int]] = field(default_factory=list)  # per stage, per class (class_aware)


def select_from_pool(
    selector: Selector,
    scores: np.ndarray,
    labels: np.ndarray,
    pool: np.ndarray,
    k: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """`k` indices out of `pool`, chosen by the selector's rule on the pool's scores."""
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    local_scores = Selector._check_scores(scores[pool], selector.uses_scores)
    local = np.asarray(selector.select(local_scores, labels[pool], k, rng), dtype=np.int64)
    if local.shape != (k,) or np.unique(local).size != k:  # a selector bug, not a user error
        raise AssertionError(f"{selector!r} returned {local.shape} indices, {k} expected")
    return pool[local]


def incremental_selection(
    labels: np.ndarray,
    selector: Selector,
    sizes: list[int],
    first: StageScores,
    score_stage: Callable[[int, np.ndarray], StageScores],
    rng: np.random.Generator,
    class_aware: bool = False,
) -> IncrementalResult:
    """Grow a coreset through `sizes` (cumulative). `first` scores every sample (held-out scores);
    `score_stage(t, coreset)` scores the samples outside `coreset` for stage t (2-based)."""
    labels = np.asarray(labels)
    n = labels.shape[0]
    classes = np.unique(labels)
    stage_of = np.zeros(n, dtype=np.int64)
    quotas: list[list[int]] = []
    coreset = np.zeros(0, dtype=np.int64)
    current = first
    for t, size in enumerate(sizes, start=1):
        if t > 1:
            current = score_stage(t, coreset)
        pool = np.flatnonzero(stage_of == 0)
        k = size - coreset.size
        if class_aware:
            if current.class_error is None:
                raise ValueError("class-aware selection needs the per-class error of each stage")
            caps = np.array([(labels[pool] == c).sum() for c in classes])
            quota = allocate(current.class_error, caps, k)
            quotas.append([int(q) for q in quota])
            parts = [
                select_from_pool(
                    selector, current.scores, labels, pool[labels[pool] == c], int(q), rng
                )
                for c, q in zip(classes, quota, strict=True)
            ]
            added = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        else:
            added = select_from_pool(selector, current.scores, labels, pool, k, rng)
        stage_of[added] = t
        coreset = np.flatnonzero(stage_of > 0)
        assert coreset.size == size, (coreset.size, size)
    return IncrementalResult(coreset=coreset, stage_of=stage_of, sizes=list(sizes), quotas=quotas)
