"""Per-sample difficulty scorers. Every scorer returns float64 [N], higher = harder."""

from __future__ import annotations

from coreset_lab.registry import build, import_all, registered
from coreset_lab.scoring.base import RandomScore, ScoreInputs, Scorer
from coreset_lab.scoring.dynamic_uncertainty import DynamicUncertainty
from coreset_lab.scoring.dynamics_scores import AUM, EL2N, TDDS, Forgetting
from coreset_lab.scoring.grand import GraNd
from coreset_lab.scoring.moderate import MedianDistance
from coreset_lab.scoring.prototypicality import Prototypicality
from coreset_lab.scoring.uncertainty import EL2NFinal, Entropy, LeastConfidence, Margin

# Every scorer class registers itself at its definition; import_all finds a new module.
import_all("coreset_lab.scoring")
SCORERS: dict[str, type[Scorer]] = registered("scorer")


def build_scorer(name: str, **kwargs: object) -> Scorer:
    return build("scorer", name, **kwargs)


__all__ = [
    "AUM",
    "EL2N",
    "EL2NFinal",
    "DynamicUncertainty",
    "GraNd",
    "MedianDistance",
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
