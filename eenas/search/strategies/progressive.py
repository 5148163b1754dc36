"""The default strategy: NSGA-II on predicted scores, then train the few candidates most worth it."""

from __future__ import annotations

import logging

import numpy as np

from eenas.arch import ExitConfig
from eenas.search.evaluator import HeadId
from eenas.search.operators import random_genomes
from eenas.search.problem import SurrogateProblem
from eenas.search.strategies.base import MIN_FIT_RECORDS, Proposal, Strategy
from eenas.search.strategies.random_search import Random

log = logging.getLogger(__name__)

EXPLORE_DRAWS = 4  # candidates added per one missing, when exploring


class Progressive(Strategy):
    """Fit ``--predictor`` on the archive, run NSGA-II where candidates of unknown heads are predicted, and pick
    ``--per-iteration`` of them spread along the predicted front (then the most uncertain)."""

    name = "progressive"
    predicts = True

    def propose(self, problem: SurrogateProblem, seed: int) -> Proposal:
        succeeded = len(self.run.archive.ok)
        if succeeded < MIN_FIT_RECORDS:  # every candidate so far failed (heads that never learn, say)
            log.warning("%d successful candidates: no predictor to fit; this iteration explores at random", succeeded)
            return Random(self.run).propose(problem, seed)
        problem.predictor = self.run.fit_predictor(seed)
        population = self.nsga2(problem, seed)
        chosen, predicted, free = self.select(problem, population, self.run.cfg.search.per_iteration, seed)
        return Proposal(chosen, predicted, free, population, problem.predictor)

    def pool(self, X: np.ndarray, k: int, seed: int) -> np.ndarray:
        """``X`` plus random new candidates holding an untrained head when fewer than ``k`` of ``X`` hold one.

        Once NSGA-II's population is made only of trained heads (it converges on what it knows
        exactly), the selection would find nothing to evaluate and the loop would stop learning;
        the predictor then ranks these random candidates like the population's."""
        space, evaluator, archive = self.run.space, self.run.evaluator, self.run.archive

        def untrained(x: np.ndarray) -> bool:
            return bool(evaluator.missing(space.decode(x))) and space.genome(x) not in archive

        short = k - sum(untrained(x) for x in X)
        if short <= 0:
            return X
        extra = [x for x in self.planted(EXPLORE_DRAWS * short, seed) if space.genome(x) not in archive]
        log.info("population holds %d untrained candidates of the %d wanted: %d random ones added",
                 k - short, k, len(extra))
        return np.unique(np.vstack([X, *extra]), axis=0) if extra else X

    def planted(self, n: int, seed: int) -> list[np.ndarray]:
        """Up to ``n`` random genomes, each given one head of the bank that the run has neither trained nor seen
        fail (drawn without repeats), at its mount and precisions.

        Drawing whole random genomes instead ran dry late in a search, when nearly every head they held was known.
        """
        space, evaluator = self.run.space, self.run.evaluator
        todo = [h for h in map(HeadId._make, space.head_bank())
                if h not in evaluator.known and h not in evaluator.failed]
        if not todo:
            return []
        rng = np.random.default_rng(seed)
        heads = [todo[i] for i in rng.choice(len(todo), min(n, len(todo)), replace=False)]
        out = []
        for head, x in zip(heads, random_genomes(space, len(heads), seed)):
            arch = space.decode(x)
            exits = [e for e in arch.exits if e.after_block != head.mount]
            if len(exits) >= space.max_exits:
                exits.pop(int(rng.integers(len(exits))))
            planted = ExitConfig(head.mount, head.head, space.thresholds[int(rng.integers(len(space.thresholds)))],
                                 core=int(rng.integers(space.cores)))
            exits = tuple(sorted([*exits, planted], key=lambda e: e.after_block))
            out.append(space.encode(space.arch(exits, head.backbone.weights, head.exits.weights, arch.hardware)))
        return out
