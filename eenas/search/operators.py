"""pymoo operators for the integer genome of :mod:`eenas.search.space`.

Each takes the space in its constructor, as pymoo's operators take their parameters, and
draws all randomness from the ``random_state`` generator pymoo passes in (pymoo >= 0.6.2),
so a run is reproducible from its seed.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling

from eenas.search.space import SearchSpace


class ExitSampling(Sampling):
    """Random genomes with about ``expected_exits`` exits each (then repaired)."""

    def __init__(self, space: SearchSpace, expected_exits: float = 3.0) -> None:
        super().__init__()
        self.space, self.expected_exits = space, expected_exits

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        space = self.space
        m = space.n_mounts
        X = random_state.integers(0, space.upper + 1, size=(n_samples, space.n_var))
        on = random_state.random((n_samples, m)) < self.expected_exits / m
        space.exit_genes(X)[:] = np.where(on, random_state.integers(1, len(space.heads) + 1, size=(n_samples, m)), 0)
        return X


class ResetMutation(Mutation):
    """Reset each gene to a uniform value with probability ``1 / n_var`` (at least one gene)."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        X = np.array(X, dtype=int)
        n, d = X.shape
        flip = random_state.random((n, d)) < 1.0 / d
        flip[np.arange(n), random_state.integers(0, d, size=n)] = True
        fresh = random_state.integers(0, self.space.upper + 1, size=(n, d))
        return np.where(flip, fresh, X)


class ExitRepair(Repair):
    """Keep 1..``max_exits`` early exits; canonicalise the genes of empty mount points."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        space = self.space
        X = np.array(X, dtype=int)
        for row in X:
            genes = space.exit_genes(row)
            active = np.flatnonzero(genes)
            if len(active) > space.max_exits:
                drop = random_state.choice(active, size=len(active) - space.max_exits, replace=False)
                genes[drop] = 0
            elif len(active) == 0:
                genes[random_state.integers(0, space.n_mounts)] = random_state.integers(1, len(space.heads) + 1)
        return np.array([space.canonical(row) for row in X])


def random_genomes(space: SearchSpace, n: int, seed: int) -> np.ndarray:
    """``n`` valid random genomes (sampled, then repaired) from a generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    X = ExitSampling(space).do(None, n, random_state=rng).get("X")
    return ExitRepair(space)._do(None, X, random_state=rng)
