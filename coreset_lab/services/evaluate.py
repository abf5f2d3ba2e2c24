"""Train the target model on the coreset with ground-truth labels; report the final test accuracy.

Final, not best: the accuracy of the last model, so the test set never selects anything. An
evaluation is an artifact like any other: the same coreset, recipe and seed are trained once
(a rerun after a crash, or the `full` row repeated across prune rates, reuses it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from coreset_lab.errors import UserError
from coreset_lab.services.context import RunContext
from coreset_lab.store.artifacts import SCRATCH
from coreset_lab.training.fit import Budget, train_classifier
from coreset_lab.training.predict import accuracy, predict_probs


@dataclass
class Evaluation:
    test_accuracy: float
    steps: int
    epochs: int
    samples_seen: int
    # test accuracy of each class (index = class): class-aware budgets are judged by its spread
    per_class_accuracy: list[float | None]


def target_budget(trainer_cfg) -> Budget:
    iterations = trainer_cfg.get("target_iterations")
    epochs = trainer_cfg.get("target_epochs")
    if (iterations is None) == (epochs is None):
        raise UserError(
            "set exactly one of trainer.target_iterations (fixed iterations whatever the coreset "
            "size, the CCS/ELFS protocol) and trainer.target_epochs (fixed epochs, TDDS)"
        )
    return Budget(epochs=epochs, iterations=iterations)


def not_evaluated_because(cfg, data) -> str | None:
    """Why a run stops after selection, or None when it evaluates. evaluate=true on data that
    cannot be evaluated is refused before any work (validate.py)."""
    if cfg.get("evaluate", "auto") is False:
        return "evaluate=false"
    if not data.labelled:
        return f"dataset {data.name} has no labels"
    if data.test is None:
        return f"dataset {data.name} has no test split"
    return None


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> list:
    """Accuracy on each class's test samples (None for a class the test set lacks)."""
    hits = probs.argmax(1) == labels
    return [float(hits[labels == c].mean()) if (labels == c).any() else None
            for c in range(num_classes)]  # fmt: skip


def evaluate_coreset(ctx: RunContext, coreset: np.ndarray) -> Evaluation:
    data, budget = ctx.data, target_budget(ctx.cfg.trainer)
    spec = {**ctx.training_spec(), "budget": asdict(budget), "seed": ctx.seed, "coreset": coreset}

    def build(path: Path) -> None:
        fit = train_classifier(
            ctx.new_model(ctx.seed),
            data,
            data.train_targets,
            ctx.recipe,
            budget,
            indices=coreset,
            seed=ctx.seed,
            logger=ctx.loggers("target"),
            checkpoint_dir=path / SCRATCH,
            name="target",
        )
        probs = predict_probs(fit.module, data.test)
        acc = accuracy(probs, data.test_targets)
        per_class = per_class_accuracy(probs, data.test_targets, data.num_classes)
        result = Evaluation(acc, fit.steps, fit.epochs, fit.samples_seen, per_class)
        (path / "evaluation.json").write_text(json.dumps(asdict(result)))

    path = ctx.store.get_or_build("evaluation", spec, build)
    return Evaluation(**json.loads((path / "evaluation.json").read_text()))
