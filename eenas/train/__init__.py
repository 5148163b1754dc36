"""Training: budgets, cached pipeline stages and the loops they share."""

from eenas.train.budget import BUDGETS, Budget, get_budget
from eenas.train.pipeline import ExitLogits, HeadDead, HeadTraining, Pipeline, TrainConfig, resolve_device

__all__ = ["BUDGETS", "Budget", "ExitLogits", "HeadDead", "HeadTraining", "Pipeline", "TrainConfig", "get_budget",
           "resolve_device"]
