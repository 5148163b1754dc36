"""The search loop: each iteration's true evaluations, checkpoint and events.

1. evaluate the strategy's initial sample truly (:mod:`eenas.search.strategies`: ``--strategy``);
2. let the strategy propose what to evaluate: the progressive one (the default) fits the predictor
   (``--predictor``), runs NSGA-II on the surrogate problem (exact where a candidate's heads are
   known) and picks the few candidates most worth training, spread along the predicted front,
   then the most uncertain, plus the front's exactly-scored members for free;
3. evaluate them truly, log the predictor's quality on those new, unseen evaluations; repeat from 2;
4. measure the final predictor on ``--holdout`` random archs the search never evaluated
   (:mod:`eenas.search.holdout`), outside the archive, when the strategy fits one.

Every iteration ends with an atomic checkpoint (archive, history, last population and the
random state), so ``--resume`` replays nothing that finished, and a resumed run ends with
the same front as an uninterrupted one.  :func:`build_run` is the composition root.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eenas.arch import Arch, BackboneConfig, Precision
from eenas.errors import EenasError
from eenas.evaluate import evaluate_arch
from eenas.hardware import ArchCost
from eenas.hardware.space import HardwareSpace, load_hardware_space
from eenas.scoring import Score
from eenas.search.archive import Archive, Record, with_hardware
from eenas.search.config import SearchConfig
from eenas.search.evaluator import Constraints, Evaluator
from eenas.search.holdout import HOLDOUT_STREAM, Holdout, draw, measure
from eenas.search.objectives import get_objectives
from eenas.search.predictor import Surrogate, kendall
from eenas.search.problem import SurrogateProblem
from eenas.search.rundir import HARDWARE_FOLDER, PARETO_COLUMNS, RunDir, SearchState
from eenas.search.space import Genome, HardwareChoice, SearchSpace, genome_text
from eenas.search.strategies import get_strategy
from eenas.search.strategies.base import MIN_FIT_RECORDS
from eenas.search.structured import new_predictor
from eenas.search.tracking import TensorBoardWriter
from eenas.train import Pipeline, TrainConfig, get_budget

if TYPE_CHECKING:
    from eenas.train.cluster import ClusterTrainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchResult:
    """What a finished run found; its run directory holds all of it and more."""

    out: Path
    front: pd.DataFrame  # PARETO_COLUMNS, cheapest first
    statics: list[dict]  # the static backbone per precision, and accelerator in a co-search (SearchRun.static_points)
    holdout: Holdout | None


def build_run(cfg: SearchConfig, out: Path, *, resume: bool = False, force: bool = False,
              data_dir: str | None = None, cache_dir: str | None = None, device: str = "auto",
              tensorboard: Path | None = None, workers: int | None = None, scheduler: str | None = None,
              search_seed: int | Sequence[int] | None = None) -> SearchRun:
    """The search ``cfg`` describes, writing to ``out``: its space, training pipeline, evaluator, run directory
    (opened fresh, resumed or forced), listeners and, with ``workers``/``scheduler``, a cluster trainer."""
    tracker = None if tensorboard is None else TensorBoardWriter(tensorboard)  # fails before any file is touched
    if workers is not None or scheduler is not None:
        from eenas.train.cluster import check_options

        check_options(workers, scheduler)
    hardware_space = None if cfg.hardware_space is None else load_hardware_space(cfg.hardware_space)
    if hardware_space is not None:
        log.info("co-search over %d accelerators of %s (budget: %s)%s", len(hardware_space.members),
                 hardware_space.name, hardware_space.budget,
                 f"; over the budget: {', '.join(hardware_space.excluded)}" if hardware_space.excluded else "")
    space = SearchSpace(cfg.dataset, cfg.resolved_width, cfg.hardware, _cores(cfg.hardware), tuple(cfg.heads),
                        tuple(cfg.bits), cfg.thresholds.values, tuple(cfg.mounts), cfg.max_exits,
                        BackboneConfig(cfg.backbone), _choices(hardware_space, out / HARDWARE_FOLDER))
    train_cfg = TrainConfig(cfg.dataset, get_budget(cfg.budget), cfg.resolved_width, cfg.seed,
                            data_dir, cache_dir, device, cfg.amp, cfg.backbone, pretrained=cfg.pretrained)
    pipeline = Pipeline(train_cfg)
    run_dir = RunDir(out, cfg.to_dict())
    state = run_dir.open(space, pipeline.cache, resume, force, objectives=get_objectives(cfg.objectives))
    if hardware_space is not None:  # after open: a forced run empties the directory first
        hardware_space.write(out / HARDWARE_FOLDER)
    pipeline.cache.listeners.append(run_dir.trained)
    if tracker is not None:
        run_dir.listeners.append(tracker)
    trainer = None  # a ClusterTrainer with --workers/--scheduler; it imports dask, so only then
    if workers is not None or scheduler is not None:
        from eenas.train.cluster import Cluster, ClusterTrainer

        trainer = ClusterTrainer(pipeline, Cluster.connect(workers, scheduler))
    # Each arch is costed on the accelerator it names: the run's one, or in a co-search the one its genome chose.
    return SearchRun(cfg, space, pipeline, Evaluator(pipeline, None, cfg.weights), run_dir, state,
                     trainer=trainer, search_seed=search_seed)


def _choices(hardware_space: HardwareSpace | None, folder: Path) -> tuple[HardwareChoice, ...]:
    """A co-search's accelerators as the genome indexes them (none: a search on one accelerator); a composed one is
    named by the file the run writes for it in ``folder``, so every front arch names a file ``eenas evaluate``
    loads."""
    if hardware_space is None:
        return ()
    names = hardware_space.hardware(Path(os.path.relpath(folder)))  # relative: arch files name it beside them
    return tuple(HardwareChoice(m.name, hardware, len(m.accelerator.cores))
                 for m, hardware in zip(hardware_space.members, names))


class SearchRun:
    """One search: the loop, its checkpoint and its events; :attr:`strategy` proposes what to evaluate, files go
    through :class:`RunDir`.  :func:`build_run` puts one together from a :class:`SearchConfig`."""

    def __init__(self, cfg: SearchConfig, space: SearchSpace, pipeline: Pipeline, evaluator: Evaluator,
                 run_dir: RunDir, state: SearchState, *, trainer: ClusterTrainer | None = None,
                 search_seed: int | Sequence[int] | None = None) -> None:
        self.cfg, self.space, self.pipeline, self.evaluator = cfg, space, pipeline, evaluator
        self.run_dir, self.state, self.trainer = run_dir, state, trainer
        self.objectives = get_objectives(cfg.objectives)
        self.constraints = Constraints(cfg.max_accuracy_drop, cfg.max_latency, cfg.max_energy, cfg.max_p99_latency)
        self.strategy = get_strategy(cfg.strategy)(self)
        # The search's random stream: the config's seed, unless the caller separates it from the training seed
        # (a benchmark searching one head bank with several seeds).
        self.rng = np.random.default_rng(cfg.seed if search_seed is None else search_seed)
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
        if self.trainer is not None:  # nothing left to train: the workers shut down while the results are written
            self.trainer.release()
        front, statics = self._write_results()
        self.run_dir.write_config(self.pipeline.cache)
        self.run_dir.event("finished", front_size=len(front), best_et_ratio=front["et_ratio"].min(),
                           best_accuracy=front["accuracy"].max(), trained=len(self.pipeline.cache.trained))
        return SearchResult(self.out, front, statics, holdout)

    def holdout(self) -> Holdout | None:
        """The final predictor on ``--holdout`` random archs the search never evaluated (``holdout.csv``).

        The predictor is fitted on the whole final archive; the archs are drawn by a generator of
        their own and never enter the archive, so the front does not depend on them.  A strategy that fits no
        predictor has none to measure.
        """
        n = self.cfg.search.holdout
        if not n or not self.strategy.predicts:
            return None
        if len(self.archive.ok) < MIN_FIT_RECORDS:
            log.warning("no holdout: %d successful candidates, no predictor to measure", len(self.archive.ok))
            return None
        rng = np.random.default_rng([self.cfg.seed, HOLDOUT_STREAM])
        problem = self.problem(self.fit_predictor(self.cfg.seed))
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
        row: dict = {"iteration": it, "seed": seed}
        self.strategy.prepare()
        if it == 0:
            new = self.evaluate(self.strategy.initial(seed), "initial", it)
            row.update(predictor="", cv_tau=np.nan, tau_new=np.nan, rmse_new=np.nan, et_tau_new=np.nan, free=0)
        else:
            proposal = self.strategy.propose(self.problem(), seed)
            new = self.evaluate(proposal.chosen, "selected", it)
            self.evaluate(proposal.free, "free", it)
            predictor = proposal.predictor
            row.update(predictor=predictor.name if predictor else self.strategy.label,
                       cv_tau=predictor.cv_tau if predictor else np.nan, free=len(proposal.free),
                       **_quality(proposal.predicted, new))
            if proposal.population is not None:
                self.state.population = proposal.population.tolist()
        self.state.iteration += 1
        front = self.archive.pareto()
        row.update(new=len(new), true_evaluations=len(self.archive.ok), heads_known=len(self.evaluator.known),
                   front_size=len(front), hypervolume=self.archive.hypervolume(self.reference_cost()),
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

    def problem(self, predictor: Surrogate | None = None) -> SurrogateProblem:
        """The pymoo problem of the run's objectives and constraints, with ``predictor`` for unknown heads."""
        return SurrogateProblem(self.space, self.evaluator, predictor, self.constraints, self.objectives)

    def fit_predictor(self, seed: int) -> Surrogate:
        """``--predictor`` fitted on the archive (and, for the structured one, on the heads evaluated so far)."""
        return new_predictor(self.cfg.predictor, self.space, self.evaluator, seed).fit(*self.archive.training_set())

    # ------------------------------------------------------------- evaluation
    def evaluate(self, X: np.ndarray, source: str, iteration: int) -> list[Record]:
        """True evaluations of the genomes of ``X`` not yet in the archive; returns the successful ones."""
        records, rows = [], np.atleast_2d(X) if len(X) else []
        self._train([], [self.space.decode(g) for g in map(self.space.genome, rows) if g not in self.archive])
        for x in rows:
            genome = self.space.genome(x)
            if genome in self.archive:
                continue
            arch = self.space.decode(genome)
            new_heads = len(self.evaluator.missing(arch))
            score, status = self.evaluator.evaluate(arch)
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
        hardware = self.cfg.hardware if self.cfg.hardware_space is None else \
            f"co-search over {len(self.space.choices)} accelerators"
        self.run_dir.write_plot(self.archive, front, statics, f"eenas search: {self.cfg.dataset}, {hardware}")
        columns = with_hardware(PARETO_COLUMNS, self.space)
        return table[columns + [c for c in table if c not in columns and c in self.cfg.objectives]], statics

    def reference_cost(self) -> ArchCost:
        """The static backbone's cost at the space's highest precision (normalises the hypervolume), on the space's
        first accelerator in a co-search."""
        return self.evaluator.cost(self.space.static_arch(max(self.space.bits)))

    def _check_feasible_bounds(self) -> None:
        """Refuse latency/energy bounds no network in the space can meet."""
        if self.cfg.max_latency is None and self.cfg.max_energy is None and self.cfg.max_p99_latency is None:
            return
        firsts = [self.evaluator.cost(arch).exits[0] for arch in self.space.first_exit_archs()]
        best_t, best_e = min(e.cum_latency_cycles for e in firsts), min(e.cum_energy_pj for e in firsts)
        for option, bound in (("--max-latency", self.cfg.max_latency),
                              ("--max-p99-latency-cycles", self.cfg.max_p99_latency)):
            if bound is not None and bound < best_t:
                raise EenasError(f"{option} {bound:g} cycles is impossible: even the cheapest first exit takes "
                                 f"{best_t:.0f} cycles")
        if self.cfg.max_energy is not None and self.cfg.max_energy < best_e:
            raise EenasError(f"--max-energy {self.cfg.max_energy:g} pJ is impossible: even the cheapest "
                             f"first exit takes {best_e:.4g} pJ")

    def static_points(self) -> list[dict]:
        """The static backbone at each precision of the space (accuracy on validation and test, its ET, and its value of
        each cost objective, under the objective's name: the figures' reference points); in a co-search on every
        accelerator, named under ``hardware``, the first one's first."""
        rows = []
        for choice in self.space.choices or (None,):
            for bits in self.space.bits:
                p = Precision(bits, bits)
                cost = self.evaluator.cost(self.space.static_arch(bits, choice.hardware if choice else None))
                rows.append({**({"hardware": choice.name} if choice else {}), "bits": bits,
                             "accuracy": self.evaluator.static_accuracy(p),
                             "test_accuracy": self.evaluator.static_accuracy(p, "test"), "static_et": cost.static_et,
                             **{o.name: o.scale(cost) for o in self.objectives if o.scale is not None}})
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
