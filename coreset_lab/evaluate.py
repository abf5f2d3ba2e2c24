"""Train the target model on the coreset with ground-truth labels; report the final test accuracy.

Final, not best: the accuracy of the last model, so the test set never selects anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coreset_lab.context import RunContext
from coreset_lab.errors import UserError
from coreset_lab.training.fit import Budget, train_classifier
from coreset_lab.training.predict import accuracy, predict_probs


@dataclass
class Evaluation:
    test_accuracy: float
    steps: int
    epochs: int
    samples_seen: int


def target_budget(trainer_cfg) -> Budget:
    iterations = trainer_cfg.get("target_iterations")
    epochs = trainer_cfg.get("target_epochs")
    if (iterations is None) == (epochs is None):
        raise UserError(
            "set exactly one of trainer.target_iterations (fixed iterations whatever the coreset "
            "size, the CCS/ELFS protocol) and trainer.target_epochs (fixed epochs, TDDS)"
        )
    return Budget(epochs=epochs, iterations=iterations)


def evaluate_coreset(ctx: RunContext, coreset: np.ndarray) -> Evaluation:
    data = ctx.data
    fit = train_classifier(
        ctx.new_model(),
        data,
        data.train_targets,
        ctx.recipe,
        target_budget(ctx.cfg.trainer),
        indices=coreset,
        seed=ctx.seed,
        logger=ctx.loggers("target"),
    )
    probs = predict_probs(fit.module, data.test)
    return Evaluation(accuracy(probs, data.test_targets), fit.steps, fit.epochs, fit.samples_seen)
