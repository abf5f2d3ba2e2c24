"""Per-sample difficulty scorers. Every scorer returns float64 [N], higher = harder."""

from __future__ import annotations

from coreset_lab.registry import build_registered
from coreset_lab.scoring.base import RandomScore, ScoreInputs, Scorer
from coreset_lab.scoring.dynamics_scores import AUM, EL2N, TDDS, Forgetting
from coreset_lab.scoring.prototypicality import Prototypicality
from coreset_lab.scoring.uncertainty import EL2NFinal, Entropy, LeastConfidence, Margin

SCORERS: dict[str, type[Scorer]] = {
    "random": RandomScore,
    "aum": AUM,
    "forgetting": Forgetting,
    "el2n": EL2N,
    "el2n_final": EL2NFinal,
    "tdds": TDDS,
    "entropy": Entropy,
    "margin": Margin,
    "least_confidence": LeastConfidence,
    "prototypicality": Prototypicality,
}


def build_scorer(name: str, **kwargs: object) -> Scorer:
    return build_registered("scorer", SCORERS, name, kwargs)


__all__ = [
    "AUM",
    "EL2N",
    "EL2NFinal",
    "SCORERS",
    "TDDS",
    "Entropy",
    "Forgetting",
    "LeastConfidence",
    "Margin",
    "Prototypicality",
    "RandomScore",
    "ScoreInputs",
    "Scorer",
    "build_scorer",
]
