"""The interface every strategy implements, and the NSGA-II run and front selection strategies share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.operators.crossover.ux import UX
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from eenas.scoring import Score
from eenas.search.objectives import objective_matrix
from eenas.search.operators import ExitRepair, ExitSampling, ResetMutation, random_genomes
from eenas.search.predictor import Surrogate
from eenas.search.problem import SurrogateProblem
from eenas.search.space import Genome

if TYPE_CHECKING:
    from eenas.search.run import SearchRun

REGISTRY: dict[str, type[Strategy]] = {}
MIN_FIT_RECORDS = 2  # successful candidates a predictor needs; with fewer, nothing is fitted or measured


@dataclass(frozen=True)
class Proposal:
    """What one iteration of a strategy asks the loop to evaluate truly."""

    chosen: np.ndarray  # genomes worth training ("selected")
    predicted: dict[Genome, Score]  # the predictor's scores of ``chosen`` (its quality is measured on them)
    free: np.ndarray  # exactly scored front members not yet in the archive ("free")
    population: np.ndarray | None = None  # NSGA-II's last population, which the next iteration starts from
    predictor: Surrogate | None = None


class Strategy:
    """Proposes candidates from the run's archive; the run evaluates them, checkpoints and logs.

    After pymoo's ``Algorithm``: a subclass sets ``name`` (registering it) and implements :meth:`propose`;
    :meth:`prepare` runs before every iteration and :meth:`initial` gives the first iteration's sample.
    """

    name: ClassVar[str]
    label: ClassVar[str] = "exact"  # predictor.csv's 'predictor' when an iteration fits none
    predicts: ClassVar[bool] = False  # it fits a predictor, which the holdout measures

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

    def __init__(self, run: SearchRun) -> None:
        self.run = run

    def prepare(self) -> None:
        """Before every iteration (nothing by default)."""

    def initial(self, seed: int) -> np.ndarray:
        """The first iteration's sample: ``--initial`` random valid genomes."""
        return random_genomes(self.run.space, self.run.cfg.search.initial, seed)

    def propose(self, problem: SurrogateProblem, seed: int) -> Proposal:
        raise NotImplementedError

    # ------------------------------------------------------------ shared by the NSGA-II strategies
    def nsga2(self, problem: SurrogateProblem, seed: int) -> np.ndarray:
        """NSGA-II's final population on ``problem``, started from the last iteration's."""
        s, space, population = self.run.cfg.search, self.run.space, self.run.state.population
        start = np.array(population) if population else ExitSampling(space)
        algorithm = NSGA2(pop_size=s.population, sampling=start, crossover=UX(), mutation=ResetMutation(space),
                          repair=ExitRepair(space), eliminate_duplicates=True)
        res = minimize(problem, algorithm, ("n_gen", s.generations), seed=seed, verbose=False)
        return np.asarray(res.pop.get("X"), dtype=int)

    def pool(self, X: np.ndarray, k: int, seed: int) -> np.ndarray:
        """The candidates :meth:`select` chooses from (unique rows of ``X``); a strategy may add some."""
        return X

    def select(self, problem: SurrogateProblem, X: np.ndarray, k: int,
               seed: int) -> tuple[np.ndarray, dict[Genome, Score], np.ndarray]:
        """Up to ``k`` untrained candidates spread along the predicted front (by its second objective), then the most
        uncertain, with their predicted scores; and the front's exactly-scored members not yet in the archive."""
        space, archive = self.run.space, self.run.archive
        X = self.pool(np.unique(X, axis=0), k, seed)
        X = X[[space.genome(x) not in archive for x in X]]
        if not len(X):
            return X, {}, X
        scores, exact = problem.scores(X)
        F = objective_matrix(problem.objectives, scores)
        feasible = np.array([problem.constraints.feasible(s) for s in scores])
        pool = np.flatnonzero(feasible) if feasible.any() else np.arange(len(X))
        on_front = np.zeros(len(X), dtype=bool)
        on_front[pool[NonDominatedSorting().do(F[pool], only_non_dominated_front=True)]] = True
        free = X[on_front & exact]
        front = np.flatnonzero(on_front & ~exact)
        front = front[np.argsort(F[front, 1], kind="stable")]
        picks = list(front[np.unique(np.linspace(0, len(front) - 1, min(k, len(front))).round().astype(int))]) \
            if len(front) else []
        if len(picks) < k:
            rest = np.setdiff1d(np.flatnonzero(~exact), picks)
            std = problem.predictor.predict(X[rest]).accuracy_std if len(rest) else np.array([])
            picks += list(rest[np.argsort(-std, kind="stable")][: k - len(picks)])
        picks = np.array(picks, dtype=int)
        return X[picks], {space.genome(X[i]): scores[i] for i in picks}, free
