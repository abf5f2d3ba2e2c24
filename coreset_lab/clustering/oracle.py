"""DIAGNOSTIC pseudo-labels that READ THE GROUND TRUTH: `clustering=oracle`.

Not a label-free method. The pseudo-labels are the true train labels with a share
`noise` of them replaced by a uniformly random *different* class (seeded), so that ELFS' ceiling
(noise 0: perfect pseudo-labels) and a curve of ELFS accuracy against pseudo-label accuracy
(accuracy = 1 - noise exactly) can be measured with everything else unchanged.

Exactly round(noise * N) labels change (Python's round: half to even), each to one of the other
k - 1 classes with equal probability; which samples change and to what depends on the seed only.
The caller passes the labels explicitly (`cluster(..., truth=labels)`); no other clustering
method accepts them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from coreset_lab.clustering.options import ClusteringMethod, parse_options
from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.values import check_real

# What results and logs say about this method, whatever its config.
READS_GROUND_TRUTH = True


@register("clustering")
@dataclass
class OracleConfig(ClusteringMethod):
    name: ClassVar[str] = "oracle"
    reads_truth: ClassVar[bool] = READS_GROUND_TRUTH

    # Share of the labels replaced by a random different class, in [0, 1).
    noise: float = 0.0
    # A marker, not a switch: the oracle always reads the labels (false is refused).
    reads_labels: bool = True

    @classmethod
    def from_dict(cls, cfg: dict) -> OracleConfig:
        out = parse_options(cls, cfg, "oracle")
        out.noise = check_real(out.noise, "clustering.noise", 0.0, 1.0, high_open=True)
        if out.reads_labels is not True:
            raise UserError(
                f"clustering.reads_labels marks the oracle as reading ground-truth labels, which "
                f"it always does: it must be true, got {out.reads_labels!r}"
            )
        return out

    def run(self, embeddings, k, seed, truth=None):
        return run_oracle(truth, k, self, seed=seed)


def oracle_labels(truth: np.ndarray, num_classes: int, noise: float, seed: int) -> np.ndarray:
    """`truth` with round(noise * N) entries moved to a uniformly random other class."""
    noise = check_real(noise, "clustering.noise", 0.0, 1.0, high_open=True)
    truth = np.asarray(truth)
    if truth.ndim != 1 or not np.issubdtype(truth.dtype, np.integer):
        raise ValueError(
            f"oracle: truth must be 1-D integer labels, got {truth.dtype} {truth.shape}"
        )
    k = int(num_classes)
    if truth.size and (truth.min() < 0 or truth.max() >= k):
        raise ValueError(f"oracle: labels outside 0..{k - 1}")
    n = truth.size
    flips = int(round(noise * n))
    if flips and k < 2:
        raise UserError("clustering.noise > 0 needs at least two classes to move a label to")
    rng = np.random.default_rng([int(seed), 0x0AC1E])
    labels = truth.astype(np.int64, copy=True)
    which = rng.choice(n, size=flips, replace=False)
    # t + U{1..k-1} mod k: uniform over the k - 1 classes that are not t.
    labels[which] = (labels[which] + rng.integers(1, k, size=flips)) % k
    return labels


def run_oracle(
    truth: np.ndarray, k: int, c: OracleConfig, seed: int = 0
) -> tuple[np.ndarray, None, dict]:
    start = time.perf_counter()
    labels = oracle_labels(truth, k, c.noise, seed)
    n = labels.size
    flipped = int(np.count_nonzero(labels != np.asarray(truth)))
    info = {
        "method": "oracle",
        "k": int(k),
        "noise": float(c.noise),
        "flipped": flipped,
        "label_accuracy": 1.0 - flipped / n if n else 1.0,
        "reads_ground_truth": READS_GROUND_TRUTH,
        "diagnostic": "pseudo-labels are the ground truth with noise: not label-free",
        "seconds": time.perf_counter() - start,
    }
    return labels, None, info
