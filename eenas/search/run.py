"""The search loop: true evaluations, predictor refits and NSGA-II, checkpointed per iteration.

1. evaluate an initial sample truly;
2. fit the predictor (``--predictor``) on the archive and the heads evaluated so far;
3. run NSGA-II on the surrogate problem (exact where a candidate's heads are known);
4. truly evaluate the few candidates most worth training (spread along the predicted
   front, then the most uncertain), and add the front's exactly-scored members for free;
5. log the predictor's quality on those new, unseen evaluations; repeat from 2;
6. measure the final predictor on ``--holdout`` random archs the search never evaluated
   (:mod:`eenas.search.holdout`), outside the archive.

``--exhaustive`` is another policy of the same loop: step 1 trains the whole head bank of the
space instead of an initial sample, so every candidate is scored exactly; steps 2-4 then run
without a predictor (nothing is left to train, the front's members enter the archive for free)
and step 6 is skipped.

Every iteration ends with an atomic checkpoint (archive, history, last population and the
random state), so ``--resume`` replays nothing that finished, and a resumed run ends with
the same front as an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.operators.crossover.ux import UX
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from tqdm.auto import tqdm

from eenas.arch import Arch, BackboneConfig, Precision
from eenas.errors import EenasError
from eenas.evaluate import evaluate_arch
from eenas.scoring import Score
from eenas.search.archive import Archive, Record
from eenas.search.config import SearchConfig
from eenas.search.evaluator import Constraints, Evaluator
from eenas.search.holdout import HOLDOUT_STREAM, Holdout, draw, measure
from eenas.search.operators import ExitRepair, ExitSampling, ResetMutation, random_genomes
from eenas.search.predictor import Surrogate, kendall
from eenas.search.problem import SurrogateProblem
from eenas.search.rundir import FRONT_COLUMNS, RunDir
from eenas.search.space import Genome, SearchSpace, genome_text
from eenas.search.structured import new_predictor
from eenas.search.tracking import TensorBoardWriter
from eenas.train import Pipeline, TrainConfig, get_budget

log = logging.getLogger(__name__)

EXPLORE_DRAWS = 4  # random draws per wanted candidate, and candidates added per one missing, when exploring


@dataclass(frozen=True)
class SearchResult:
    """What a finished run found; its run directory holds all of it and more."""

    out: Path
    front: pd.DataFrame  # FRONT_COLUMNS, cheapest first
    statics: list[dict]  # the static backbone per precision (SearchRun.static_points)
    holdout: Holdout | None


class SearchRun:
    """One search: the loop, NSGA-II and the choice of what to train; files go through :class:`RunDir`."""

    def __init__(self, cfg: SearchConfig, out: Path, *, resume: bool = False, force: bool = False,
                 data_dir: str | None = None, cache_dir: str | None = None, device: str = "auto",
                 tensorboard: Path | None = None, workers: int | None = None, scheduler: str | None = None) -> None:
        tracker = None if tensorboard is None else TensorBoardWriter(tensorboard)  # fails before any file is touched
        if workers is not None or scheduler is not None:
            from eenas.train.cluster import check_options

            check_options(workers, scheduler)
        self.cfg = cfg
        self.space = SearchSpace(cfg.dataset, cfg.resolved_width, cfg.hardware, _cores(cfg.hardware),
                                 tuple(cfg.heads), tuple(cfg.bits), cfg.thresholds.values, tuple(cfg.mounts),
                                 cfg.max_exits, BackboneConfig(cfg.backbone))
        self.constraints = Constraints(cfg.max_accuracy_drop, cfg.max_latency, cfg.max_energy)
        train_cfg = TrainConfig(cfg.dataset, get_budget(cfg.budget), cfg.resolved_width, cfg.seed,
                                data_dir, cache_dir, device, cfg.amp, cfg.backbone, pretrained=cfg.pretrained)
        self.pipeline = Pipeline(train_cfg)
        self.evaluator = Evaluator(self.pipeline, cfg.hardware, cfg.weights)
        self.run_dir = RunDir(out, cfg.to_dict())
        self.state = self.run_dir.open(self.space, self.pipeline.cache, resume, force)
        self.pipeline.cache.listeners.append(self.run_dir.trained)
        if tracker is not None:
            self.run_dir.listeners.append(tracker)
        self.trainer = None  # a ClusterTrainer with --workers/--scheduler; it imports dask, so only then
        if workers is not None or scheduler is not None:
            from eenas.train.cluster import Cluster, ClusterTrainer

            self.trainer = ClusterTrainer(self.pipeline, Cluster.connect(workers, scheduler))
        self.rng = np.random.default_rng(cfg.seed)
        if self.state.rng_state:
            self.rng.bit_generator.state = self.state.rng_state
        for record in self.archive.ok:
            self.evaluator.known.update(self.evaluator.heads(self.space.decode(record.genome)))

    @property
    def out(self) -> Path:
        return self.run_dir.path

    @property
    def archive(self) -> Archive:
        return self.state.archive

    @property
    def done(self) -> bool:
        return self.state.iteration > self.cfg.search.iterations

    # -------------------------------------------------------------------- loop
    def run(self) -> SearchResult:
        """Run (or finish) every iteration, the holdout and the results: the run directory is then complete."""
        try:
            return self._run()
        finally:
            if self.trainer is not None:
                self.trainer.close()

    def _run(self) -> SearchResult:
        self._check_feasible_bounds()
        self._train([Precision(b, b) for b in self.space.bits], [])  # every static backbone is reported
        total = self.cfg.search.iterations + 1
        done = min(self.state.iteration, total)
        with tqdm(total=total, initial=done, desc="search", dynamic_ncols=True, disable=None) as bar:
            while not self.done:
                row = self.step()
                bar.update(1)
                bar.set_postfix(true_evals=row["true_evaluations"], best_et_ratio=f"{row['best_et_ratio']:.3f}")
        holdout = self.holdout()
        front, statics = self._write_results()
        self.run_dir.write_config(self.pipeline.cache)
        self.run_dir.event("finished", front_size=len(front), best_et_ratio=front["et_ratio"].min(),
                           best_accuracy=front["accuracy"].max(), trained=len(self.pipeline.cache.trained))
        return SearchResult(self.out, front, statics, holdout)

    def holdout(self) -> Holdout | None:
        """The final predictor on ``--holdout`` random archs the search never evaluated (``holdout.csv``).

        The predictor is fitted on the whole final archive; the archs are drawn by a generator of
        their own and never enter the archive, so the front does not depend on them.
        """
        n = self.cfg.search.holdout
        if not n or self.cfg.exhaustive:  # an exhaustive run uses no predictor
            return None
        rng = np.random.default_rng([self.cfg.seed, HOLDOUT_STREAM])
        predictor = self._predictor(self.cfg.seed)
        problem = SurrogateProblem(self.space, self.evaluator, predictor, self.constraints)
        X = draw(problem, self.archive, n, int(rng.integers(2**31 - 1)))
        self._train([], [self.space.decode(self.space.genome(x)) for x in X])
        result = measure(problem, X, rng)
        self.run_dir.write_holdout(result)
        self.run_dir.event("holdout", **{r["metric"]: r["value"] for r in result.metrics.to_dict("records")},
                           candidates=len(result.points))
        return result

    def step(self) -> dict:
        """One iteration (the first is the initial sample), then a checkpoint."""
        start = time.perf_counter()
        it = self.state.iteration
        seed = int(self.rng.integers(2**31 - 1))
        problem = SurrogateProblem(self.space, self.evaluator, None, self.constraints)
        row: dict = {"iteration": it, "seed": seed}
        if self.cfg.exhaustive:
            self._head_bank()  # trains at the first step; loads from the cache after a resume
        if it == 0:
            new = [] if self.cfg.exhaustive else \
                self._evaluate(random_genomes(self.space, self.cfg.search.initial, seed), "initial", it)
            row.update(predictor="", cv_tau=np.nan, tau_new=np.nan, rmse_new=np.nan, et_tau_new=np.nan, free=0)
        else:
            if not self.cfg.exhaustive:
                problem.predictor = self._predictor(seed)
            pop = self._nsga2(problem, seed)
            chosen, predicted, free = self._select(problem, pop, self.cfg.search.per_iteration, seed)
            new = self._evaluate(chosen, "selected", it)
            self._evaluate(free, "free", it)
            row.update(predictor=problem.predictor.name if problem.predictor else "exact",
                       cv_tau=problem.predictor.cv_tau if problem.predictor else np.nan, free=len(free),
                       **_quality(predicted, new))
            self.state.population = pop.tolist()
        self.state.iteration += 1
        front = self.archive.pareto()
        row.update(new=len(new), true_evaluations=len(self.archive.ok), heads_known=len(self.evaluator.known),
                   front_size=len(front), hypervolume=self.archive.hypervolume(self.reference_et()),
                   best_et_ratio=min((r.score.et_ratio for r in front), default=np.nan),
                   wall_s=time.perf_counter() - start)
        self.state.history.append(row)
        self.state.rng_state = self.rng.bit_generator.state
        self.run_dir.save(self.state, self.pipeline.cache)
        evaluated = [
            {"genome": genome_text(r.genome), "source": r.source, "status": r.status, "new_heads": r.new_heads,
             **({"accuracy": r.score.accuracy, "average_et": r.score.average_et, "et_ratio": r.score.et_ratio,
                 "feasible": r.feasible} if r.ok else {})}
            for r in self.archive if r.iteration == it]
        self.run_dir.event("iteration", **row, best_accuracy=max((r.score.accuracy for r in front), default=np.nan),
                           evaluated=evaluated)
        log.info("iteration %d: %d new true evaluations (%d in all), front %d, best ET ratio %.3f",
                 it, len(new), len(self.archive.ok), len(front), row["best_et_ratio"])
        return row

    def _predictor(self, seed: int) -> Surrogate:
        """``--predictor`` fitted on the archive (and, for the structured one, on the heads evaluated so far)."""
        return new_predictor(self.cfg.predictor, self.space, self.evaluator, seed).fit(*self.archive.training_set())

    def _nsga2(self, problem: SurrogateProblem, seed: int) -> np.ndarray:
        s = self.cfg.search
        start = np.array(self.state.population) if self.state.population else ExitSampling(self.space)
        algorithm = NSGA2(pop_size=s.population, sampling=start, crossover=UX(), mutation=ResetMutation(self.space),
                          repair=ExitRepair(self.space), eliminate_duplicates=True)
        res = minimize(problem, algorithm, ("n_gen", s.generations), seed=seed, verbose=False)
        return np.asarray(res.pop.get("X"), dtype=int)

    def _select(self, problem: SurrogateProblem, X: np.ndarray, k: int,
                seed: int) -> tuple[np.ndarray, dict[Genome, Score], np.ndarray]:
        """Up to ``k`` untrained candidates spread along the predicted front (then the most
        uncertain) with their predicted scores, and the front's exactly-scored members not yet
        in the archive."""
        X = self._with_untrained(np.unique(X, axis=0), k, seed)
        X = X[[self.space.genome(x) not in self.archive for x in X]]
        if not len(X):
            return X, {}, X
        scores, exact = problem.scores(X)
        F = np.array([[-s.accuracy, s.average_et] for s in scores])
        feasible = np.array([self.constraints.feasible(s) for s in scores])
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
        return X[picks], {self.space.genome(X[i]): scores[i] for i in picks}, free

    def _with_untrained(self, X: np.ndarray, k: int, seed: int) -> np.ndarray:
        """``X`` plus random new candidates holding an untrained head when fewer than ``k`` of ``X`` hold one.

        Once NSGA-II's population is made only of trained heads (it converges on what it knows
        exactly), the selection would find nothing to evaluate and the loop would stop learning;
        the predictor then ranks these random candidates like the population's."""
        if self.cfg.exhaustive:
            return X

        def untrained(x: np.ndarray) -> bool:
            return bool(self.evaluator.missing(self.space.decode(x))) and self.space.genome(x) not in self.archive

        short = k - sum(untrained(x) for x in X)
        if short <= 0:
            return X
        draws = random_genomes(self.space, EXPLORE_DRAWS * k, seed)
        extra = [x for x in draws if untrained(x)][: EXPLORE_DRAWS * short]
        log.info("population holds %d untrained candidates of the %d wanted: %d random ones added",
                 k - short, k, len(extra))
        return np.unique(np.vstack([X, *extra]), axis=0) if extra else X

    # ------------------------------------------------------------- evaluation
    def _head_bank(self) -> None:
        """Train (or load from the cache) every head of the space not yet known, each once."""
        todo = [h for h in self.space.head_bank() if h not in self.evaluator.known]
        if not todo:
            return
        start, trained = time.perf_counter(), len(self.pipeline.cache.trained)
        if self.trainer is not None:
            failed = self.trainer.train(heads=todo)
            if failed:  # every candidate is scored exactly: the bank must be complete
                head, reason = next(iter(failed.items()))
                raise EenasError(f"head bank: {len(failed)} job(s) kept failing, e.g. {head[2]}@{head[1]} "
                                 f"{head[3].tag} on the {head[0].tag} backbone ({reason}); the others are cached: "
                                 "continue with --resume")
        for head in tqdm(todo, desc="head bank", dynamic_ncols=True, disable=None):
            self.evaluator.learn(head)
        trained = len(self.pipeline.cache.trained) - trained
        log.info("head bank: %d heads known, %d cache entries trained", len(todo), trained)
        self.run_dir.event("head_bank", heads=len(todo), trained=trained, seconds=time.perf_counter() - start)

    def _evaluate(self, X: np.ndarray, source: str, iteration: int) -> list[Record]:
        """True evaluations of the genomes of ``X`` not yet in the archive; returns the successful ones."""
        records, rows = [], np.atleast_2d(X) if len(X) else []
        self._train([], [self.space.decode(g) for g in map(self.space.genome, rows) if g not in self.archive])
        for x in rows:
            genome = self.space.genome(x)
            if genome in self.archive:
                continue
            arch = self.space.decode(genome)
            new_heads = len(self.evaluator.missing(arch))
            score, status = self.evaluator.try_score(arch)
            test = None if score is None else self.evaluator.score(arch, "test").accuracy
            feasible = score is not None and self.constraints.feasible(score)
            record = Record(genome, iteration, source, status, new_heads, score, test, feasible)
            self.archive.add(record)
            records.append(record)
        return [r for r in records if r.ok]

    def _train(self, backbones: list[Precision], archs: list[Arch]) -> None:
        """On a cluster: train the backbones and the heads of ``archs`` the cache lacks, all at once, before the
        serial scoring finds them cached; a job that keeps failing fails its candidates."""
        if self.trainer is not None:
            heads = [h for arch in archs for h in self.evaluator.missing(arch)]
            self.evaluator.failed.update(self.trainer.train(backbones, heads))

    # ---------------------------------------------------------------- results
    def _write_results(self) -> tuple[pd.DataFrame, list[dict]]:
        """``pareto.csv``, every front arch with its test-split stats, and ``pareto.png``."""
        front = self.archive.pareto()
        table = self.run_dir.write_front(self.archive, front)
        for k, record in zip(table["k"], front):
            # The network the record was scored as, without the exits no validation sample leaves at; the
            # evaluation's arch carries the training block 'eenas evaluate' reproduces these numbers from.
            live = self.evaluator.live(self.space.decode(record.genome))
            evaluation = evaluate_arch(live, self.pipeline, weights=self.cfg.weights)
            self.run_dir.write_pareto_arch(k, evaluation)
        statics = self.static_points()
        self.run_dir.write_plot(self.archive, table, statics, f"eenas search: {self.cfg.dataset}, {self.cfg.hardware}")
        return table[FRONT_COLUMNS], statics

    def reference_et(self) -> float:
        """The static backbone's ET at the space's highest precision (normalises hypervolume)."""
        return self.evaluator.cost(self.space.static_arch(max(self.space.bits))).static_et

    def _check_feasible_bounds(self) -> None:
        """Refuse latency/energy bounds no network in the space can meet."""
        if self.cfg.max_latency is None and self.cfg.max_energy is None:
            return
        firsts = [self.evaluator.cost(arch).exits[0] for arch in self.space.first_exit_archs()]
        best_t, best_e = min(e.cum_latency_cycles for e in firsts), min(e.cum_energy_pj for e in firsts)
        if self.cfg.max_latency is not None and self.cfg.max_latency < best_t:
            raise EenasError(f"--max-latency {self.cfg.max_latency:g} cycles is impossible: even the cheapest "
                             f"first exit takes {best_t:.0f} cycles")
        if self.cfg.max_energy is not None and self.cfg.max_energy < best_e:
            raise EenasError(f"--max-energy {self.cfg.max_energy:g} pJ is impossible: even the cheapest "
                             f"first exit takes {best_e:.4g} pJ")

    def static_points(self) -> list[dict]:
        """The static backbone at each precision of the space (accuracy on validation and test)."""
        rows = []
        for bits in self.space.bits:
            p = Precision(bits, bits)
            rows.append({"bits": bits, "accuracy": self.evaluator.static_accuracy(p),
                         "test_accuracy": self.evaluator.static_accuracy(p, "test"),
                         "static_et": self.evaluator.cost(self.space.static_arch(bits)).static_et})
        return rows


def _quality(predicted: dict[Genome, Score], new: list[Record]) -> dict:
    """Out-of-sample quality of the predictions made for this iteration's new true evaluations."""
    new = [r for r in new if r.genome in predicted]
    if not new:
        return {"tau_new": np.nan, "rmse_new": np.nan, "et_tau_new": np.nan}
    true_acc = np.array([r.score.accuracy for r in new])
    pred_acc = np.array([predicted[r.genome].accuracy for r in new])
    true_et = np.array([r.score.average_et for r in new])
    pred_et = np.array([predicted[r.genome].average_et for r in new])
    return {"tau_new": kendall(pred_acc, true_acc), "rmse_new": float(np.sqrt(np.mean((pred_acc - true_acc) ** 2))),
            "et_tau_new": kendall(pred_et, true_et)}


def _cores(hardware: str) -> int:
    from eenas.hardware import load_accelerator

    return len(load_accelerator(hardware).cores)
