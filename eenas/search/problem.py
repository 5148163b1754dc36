"""The pymoo problem NSGA-II optimises: the run's objectives (``--objectives``) under its constraints."""

from __future__ import annotations

import numpy as np
from pymoo.core.problem import Problem

from eenas.arch import Arch
from eenas.scoring import Score
from eenas.search.evaluator import Constraints, Evaluator
from eenas.search.objectives import DEFAULT_OBJECTIVES, Objective, get_objectives, objective_matrix
from eenas.search.predictor import Surrogate
from eenas.search.space import Genome, SearchSpace


class SurrogateProblem(Problem):
    """Scores candidates exactly when all their heads are cached, else by the predictor.

    Objectives are ``objectives``, minimised (:func:`~eenas.search.objectives.objective_matrix`); constraints
    follow :class:`Constraints`.
    """

    def __init__(self, space: SearchSpace, evaluator: Evaluator, predictor: Surrogate | None,
                 constraints: Constraints,
                 objectives: tuple[Objective, ...] = get_objectives(DEFAULT_OBJECTIVES)) -> None:
        n_constr = len(constraints.violations(0.0, 0.0, 0.0))
        super().__init__(n_var=space.n_var, n_obj=len(objectives), n_ieq_constr=n_constr, xl=0, xu=space.upper,
                         vtype=int)
        self.space, self.evaluator, self.predictor, self.constraints = space, evaluator, predictor, constraints
        self.objectives = objectives
        self.exact: dict[Genome, Score] = {}

    def scores(self, X: np.ndarray) -> tuple[list[Score], np.ndarray]:
        """A score per row and whether it is exact (no training happens here)."""
        archs = [self.space.decode(x) for x in X]
        exact = np.array([not self.evaluator.missing(a) for a in archs])
        out: list[Score | None] = [None] * len(X)
        for i in np.flatnonzero(exact):
            key = self.space.genome(X[i])
            if key not in self.exact:
                self.exact[key] = self.evaluator.score(archs[i])
            out[i] = self.exact[key]
        todo = np.flatnonzero(~exact)
        if len(todo):
            for i, score in zip(todo, self.predicted(X[todo], [archs[i] for i in todo])):
                out[i] = score
        return out, exact

    def predicted(self, X: np.ndarray, archs: list[Arch]) -> list[Score]:
        """The predictor's scores of genomes ``X`` (decoded: ``archs``): predicted accuracy and ratios, exact costs of
        the networks those ratios leave (:meth:`Evaluator.predicted`)."""
        pred = self.predictor.predict(X)
        return [self.evaluator.predicted(a, float(acc), ratios)
                for acc, ratios, a in zip(pred.accuracy, pred.exit_ratios, archs)]

    def _evaluate(self, X, out, *args, **kwargs):
        scores, _ = self.scores(np.asarray(X, dtype=int))
        out["F"] = objective_matrix(self.objectives, scores)
        out["G"] = np.array([self.constraints.of(s) for s in scores])
