"""Predict a candidate's accuracy and exit ratios from its genome.

Tree ensembles from scikit-learn: they handle the mixed categorical/ordinal genome without
scaling, fit multi-output targets (accuracy plus one exit ratio per mount point) in one
model, and the spread of their trees gives the uncertainty the candidate selection uses.
Between a random forest and extra trees, the one with the better cross-validated Kendall
tau on accuracy is kept at every refit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.stats import kendalltau
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.model_selection import KFold, cross_val_predict

from eenas.search.space import SearchSpace

MODELS = {
    "random_forest": lambda seed: RandomForestRegressor(n_estimators=100, min_samples_leaf=1, random_state=seed),
    "extra_trees": lambda seed: ExtraTreesRegressor(n_estimators=100, min_samples_leaf=1, random_state=seed),
}


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(kendalltau(a, b).statistic)


@dataclass(frozen=True)
class Prediction:
    accuracy: np.ndarray  # [n]
    accuracy_std: np.ndarray  # [n] spread over the ensemble's trees
    exit_ratios: list[np.ndarray]  # per candidate: ratios of its exits then the final, summing to 1


class Surrogate(Protocol):
    """What the search asks of a predictor: this module's tree ensemble or :mod:`eenas.search.structured`'s."""

    name: str
    cv_tau: float

    def fit(self, X: np.ndarray, ratios: list[np.ndarray], accuracy: np.ndarray) -> Surrogate: ...

    def predict(self, X: np.ndarray) -> Prediction: ...


class Predictor:
    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space, self.seed = space, seed
        self.model = None
        self.name = ""
        self.cv_tau = float("nan")

    def fit(self, X: np.ndarray, ratios: list[np.ndarray], accuracy: np.ndarray) -> Predictor:
        F = self.space.features(X)
        Y = self.space.targets(X, ratios, np.asarray(accuracy))
        best = (-np.inf, "", None)
        folds = min(5, len(F))
        for name, make in MODELS.items():
            tau = np.nan
            if folds >= 3:
                cv = KFold(folds, shuffle=True, random_state=self.seed)
                tau = kendall(cross_val_predict(make(self.seed), F, Y, cv=cv)[:, 0], Y[:, 0])
            score = -1.0 if np.isnan(tau) else tau
            if score > best[0]:
                best = (score, name, tau)
        _, self.name, self.cv_tau = best
        self.model = MODELS[self.name](self.seed).fit(F, Y)
        return self

    def predict(self, X: np.ndarray) -> Prediction:
        X = np.atleast_2d(X)
        F = self.space.features(X)
        per_tree = np.stack([t.predict(F) for t in self.model.estimators_])  # [trees, n, targets]
        mean = per_tree.mean(axis=0)
        return Prediction(np.clip(mean[:, 0], 0, 1), per_tree[:, :, 0].std(axis=0), self.space.ratios(X, mean))
