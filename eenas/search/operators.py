"""pymoo operators for the integer genome of :mod:`eenas.search.space`.

All randomness comes from the ``random_state`` generator pymoo passes in, so a run is
reproducible from its seed.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling

from eenas.search.space import SearchSpace


def _space(problem) -> SearchSpace:
    return problem.space


class ExitSampling(Sampling):
    """Random genomes with about ``expected_exits`` exits each (then repaired)."""

    def __init__(self, expected_exits: float = 3.0) -> None:
        super().__init__()
        self.expected_exits = expected_exits

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        space = _space(problem)
        m = space.n_mounts
        X = random_state.integers(0, space.upper + 1, size=(n_samples, space.n_var))
        on = random_state.random((n_samples, m)) < self.expected_exits / m
        X[:, :m] = np.where(on, random_state.integers(1, len(space.heads) + 1, size=(n_samples, m)), 0)
        return X


class ResetMutation(Mutation):
    """Reset each gene to a uniform value with probability ``1 / n_var`` (at least one gene)."""

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        space = _space(problem)
        X = np.array(X, dtype=int)
        n, d = X.shape
        flip = random_state.random((n, d)) < 1.0 / d
        flip[np.arange(n), random_state.integers(0, d, size=n)] = True
        fresh = random_state.integers(0, space.upper + 1, size=(n, d))
        return np.where(flip, fresh, X)


class ExitRepair(Repair):
    """Keep 1..``max_exits`` early exits; canonicalise the genes of empty mount points."""

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        space = _space(problem)
        m = space.n_mounts
        X = np.array(X, dtype=int)
        for row in X:
            active = np.flatnonzero(row[:m])
            if len(active) > space.max_exits:
                drop = random_state.choice(active, size=len(active) - space.max_exits, replace=False)
                row[drop] = 0
            elif len(active) == 0:
                row[random_state.integers(0, m)] = random_state.integers(1, len(space.heads) + 1)
        return np.array([space.canonical(row) for row in X])


def random_genomes(problem, n: int, seed: int) -> np.ndarray:
    """``n`` valid random genomes (sampled, then repaired) from a generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    X = ExitSampling().do(problem, n, random_state=rng).get("X")
    return ExitRepair()._do(problem, X, random_state=rng)
