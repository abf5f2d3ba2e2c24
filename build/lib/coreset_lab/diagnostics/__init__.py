"""Diagnostics of scores: stability across seeds and score distributions (UNSEEN's Figure 1)."""

from coreset_lab.diagnostics.stability import (
    StabilityReport,
    fitting_scores,
    rank_pearson,
    score_stability,
    score_summary,
    unseen_scores,
    write_stability,
)

__all__ = [
    "StabilityReport",
    "fitting_scores",
    "rank_pearson",
    "score_stability",
    "score_summary",
    "unseen_scores",
    "write_stability",
]
