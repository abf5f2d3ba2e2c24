"""Monotonic top-k selection: keep the hardest or the easiest samples, optionally per class."""

from __future__ import annotations

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.selection.budget import Selector, easy_first, hard_first
from coreset_lab.values import check_choice


@register("selector")
class TopK(Selector):
    """Keep the k highest scores (keep="hard") or the k lowest (keep="easy").

    Equal scores are broken by sample index (lower index first), so the result is deterministic.
    class_balanced=True splits the budget over the classes present in `labels` (see
    `class_budgets`) and takes the top k_c inside each class.
    """

    name = "topk"

    def __init__(
        self, prune_rate: float = 0.5, keep: str = "hard", class_balanced: bool = False
    ) -> None:
        super().__init__(prune_rate)
        self.keep = check_choice(keep, "selector.keep", ("hard", "easy"))
        if not isinstance(class_balanced, (bool, np.bool_)):
            raise UserError(
                f"selector.class_balanced must be true or false, got {class_balanced!r}"
            )
        self.class_balanced = bool(class_balanced)

    def select(
        self, scores: np.ndarray, labels: np.ndarray | None, k: int, rng: np.random.Generator
    ) -> np.ndarray:
        order = hard_first(scores) if self.keep == "hard" else easy_first(scores)
        if not self.class_balanced:
            return order[:k]
        if labels is None:
            raise ValueError("selector.class_balanced=true needs labels (or pseudo-labels)")
        _, counts = np.unique(labels, return_counts=True)
        budgets = class_budgets(counts, k)
        # A stable sort by class keeps the ranking (and its tie-breaking) inside every class,
        # in O(N log N) rather than one pass over N per class (1000 passes on ImageNet).
        grouped = order[np.argsort(labels[order], kind="stable")]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        picks = [grouped[s : s + b] for s, b in zip(starts, budgets, strict=True)]
        return np.concatenate(picks)


def class_budgets(counts: np.ndarray, k: int) -> np.ndarray:
    """Per-class budgets summing exactly to k, each class present getting at least one.

    Every class first gets 1 sample, then the other k - C are shared in proportion to the
    remaining class sizes n_c - 1 with largest-remainder rounding (ties to the lower class).
    For equal class sizes this is exactly k/C each, for classes much larger than one sample
    about k * n_c / N; it never exceeds n_c, and a bigger class never gets fewer than a smaller
    one. Integer arithmetic keeps the rounding exact.
    """
    counts = np.asarray(counts, dtype=np.int64)
    c, n = len(counts), int(counts.sum())
    if k < c:
        raise UserError(
            f"selector.class_balanced=true needs at least one sample per class: the budget of "
            f"{k} (from selector.prune_rate) is smaller than the {c} classes present; "
            f"lower selector.prune_rate or set selector.class_balanced=false"
        )
    extra, spare = k - c, counts - 1
    budgets = np.ones(c, dtype=np.int64)
    if extra == 0:
        return budgets
    share = extra * spare
    base, rem = share // (n - c), share % (n - c)
    budgets += base
    short = extra - int(base.sum())
    budgets[np.argsort(-rem, kind="stable")[:short]] += 1
    return budgets
