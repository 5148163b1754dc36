"""Train the whole head bank of the space first, then search on exact scores only (``--exhaustive``)."""

from __future__ import annotations

import logging
import time

import numpy as np
from tqdm.auto import tqdm

from eenas.errors import EenasError
from eenas.search.problem import SurrogateProblem
from eenas.search.strategies.base import Proposal, Strategy

log = logging.getLogger(__name__)


class Exhaustive(Strategy):
    """Every mount point x head type x exit precision x backbone precision, each trained once through the cache;
    NSGA-II then scores every candidate exactly and each round's front enters the archive for free."""

    name = "exhaustive"

    def prepare(self) -> None:
        """Train (or load from the cache) every head of the space not yet known, each once: at the first iteration,
        and after a resume."""
        run = self.run
        todo = [h for h in run.space.head_bank() if h not in run.evaluator.known]
        if not todo:
            return
        start, trained = time.perf_counter(), len(run.pipeline.cache.trained)
        if run.trainer is not None:
            failed = run.trainer.train(heads=todo)
            if failed:  # every candidate is scored exactly: the bank must be complete
                run.run_dir.save(run.state, run.pipeline.cache)  # a checkpoint to resume from, even at the start
                head, reason = next(iter(failed.items()))
                raise EenasError(f"head bank: {len(failed)} job(s) kept failing, e.g. {head[2]}@{head[1]} "
                                 f"{head[3].tag} on the {head[0].tag} backbone ({reason}); the others are cached: "
                                 "continue with --resume")
        for head in tqdm(todo, desc="head bank", dynamic_ncols=True, disable=None):
            run.evaluator.learn(head)
        trained = len(run.pipeline.cache.trained) - trained
        log.info("head bank: %d heads known, %d cache entries trained", len(todo), trained)
        run.run_dir.event("head_bank", heads=len(todo), trained=trained, seconds=time.perf_counter() - start)

    def initial(self, seed: int) -> np.ndarray:
        """None: the head bank replaces the initial sample."""
        return np.empty((0, self.run.space.n_var), dtype=int)

    def propose(self, problem: SurrogateProblem, seed: int) -> Proposal:
        population = self.nsga2(problem, seed)
        chosen, predicted, free = self.select(problem, population, self.run.cfg.search.per_iteration, seed)
        return Proposal(chosen, predicted, free, population)
