"""Random search: each iteration truly evaluates ``--per-iteration`` random valid candidates the run has not seen.

The baseline a predictor must beat (``benchmarks/bench_predictor.py`` measures it with :func:`fresh_genomes`).
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from itertools import islice

import numpy as np

from eenas.search.operators import random_genomes
from eenas.search.problem import SurrogateProblem
from eenas.search.space import Genome, SearchSpace
from eenas.search.strategies.base import Proposal, Strategy

DRAWS = 50  # random genomes drawn per wanted candidate (a draw may repeat one the run has)


def fresh_genomes(space: SearchSpace, seen: Container[Genome], draws: int, seed: int) -> Iterator[Genome]:
    """The genomes of ``draws`` random valid ones, each once, skipping those in ``seen`` when they come up (so
    ``seen`` may grow while this is read)."""
    given: set[Genome] = set()
    for x in random_genomes(space, draws, seed):
        genome = space.genome(x)
        if genome not in given and genome not in seen:
            given.add(genome)
            yield genome


class Random(Strategy):
    """No predictor and no NSGA-II: random candidates, each trained and scored exactly."""

    name = "random"
    label = "none"

    def propose(self, problem: SurrogateProblem, seed: int) -> Proposal:
        k, space = self.run.cfg.search.per_iteration, self.run.space
        chosen = np.array(list(islice(fresh_genomes(space, self.run.archive, DRAWS * k, seed), k)), dtype=int)
        return Proposal(chosen.reshape(-1, space.n_var), {}, chosen[:0].reshape(0, space.n_var))
