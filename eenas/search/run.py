"""The search loop: true evaluations, predictor refits and NSGA-II, checkpointed per iteration.

1. evaluate an initial sample truly;
2. fit the predictors on the archive;
3. run NSGA-II on the surrogate problem (exact where a candidate's heads are known);
4. truly evaluate the few candidates most worth training (spread along the predicted
   front, then the most uncertain), and add the front's exactly-scored members for free;
5. log the predictor's quality on those new, unseen evaluations; repeat from 2;
6. measure the final predictor on ``--holdout`` random archs the search never evaluated
   (:mod:`eenas.search.holdout`), outside the archive.

Every iteration ends with an atomic checkpoint (archive, history, last population and the
random state), so ``--resume`` replays nothing that finished, and a resumed run ends with
the same front as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.operators.crossover.ux import UX
from pymoo.optimize import minimize
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from tqdm.auto import tqdm

from eenas import __version__
from eenas.arch import Precision
from eenas.errors import EenasError
from eenas.io import write_json
from eenas.search.config import SearchConfig
from eenas.search.evaluator import Constraints, Evaluator, Score
from eenas.search.holdout import HOLDOUT_STREAM, Holdout, draw, measure
from eenas.search.operators import ExitRepair, ExitSampling, ResetMutation, random_genomes
from eenas.search.outputs import write_holdout, write_progress
from eenas.search.predictor import Predictor, kendall
from eenas.search.problem import SurrogateProblem
from eenas.search.space import SearchSpace, exits_text
from eenas.train import Pipeline, TrainConfig, get_budget

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.json"
CHECKPOINT_VERSION = 1


@dataclass
class SearchState:
    """What a checkpoint holds."""

    iteration: int = 0  # iterations finished (0 = initial sample pending)
    archive: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    population: list[list[int]] | None = None
    rng_state: dict | None = None


def _join(values) -> str:
    return ";".join(f"{v:.6g}" for v in values)


class SearchRun:
    def __init__(self, cfg: SearchConfig, out: Path, *, resume: bool = False, force: bool = False,
                 data_dir: str | None = None, cache_dir: str | None = None, device: str = "auto") -> None:
        self.cfg, self.out = cfg, Path(out)
        self.space = SearchSpace(cfg.dataset, cfg.resolved_width, cfg.hardware, _cores(cfg.hardware),
                                 tuple(cfg.heads), tuple(cfg.bits), cfg.thresholds.values, max_exits=cfg.max_exits)
        self.constraints = Constraints(cfg.max_accuracy_drop, cfg.max_latency, cfg.max_energy)
        train_cfg = TrainConfig(cfg.dataset, get_budget(cfg.budget), cfg.resolved_width, cfg.seed,
                                data_dir, cache_dir, device, cfg.amp)
        self.pipeline = Pipeline(train_cfg)
        self.evaluator = Evaluator(self.pipeline, cfg.hardware, cfg.weights)
        self.held_out: Holdout | None = None
        self._earlier_cache: dict[str, list[str]] = {"loaded": [], "trained": []}  # of a resumed run's sessions
        self.state = self._open(resume, force)
        self.rng = np.random.default_rng(cfg.seed)
        if self.state.rng_state:
            self.rng.bit_generator.state = self.state.rng_state
        self._seen = {r["genome"] for r in self.state.archive}
        for record in self.state.archive:
            if record["status"] == "ok":
                self.evaluator.known.update(self.evaluator.heads(self.space.decode(_genome(record))))

    # ------------------------------------------------------------------ run dir
    def _open(self, resume: bool, force: bool) -> SearchState:
        ckpt = self.out / CHECKPOINT
        if resume and ckpt.exists():
            config = json.loads((self.out / "config.json").read_text())
            saved, now = config["search"], self.cfg.to_dict()
            if saved != now:
                diff = next(k for k in {**now, **saved} if saved.get(k) != now.get(k))  # a key may be new
                raise EenasError(f"{self.out} was searched with a different '{diff}' ({saved.get(diff)}); "
                                 "resume with the same options or choose a new --out")
            self._earlier_cache = config.get("cache", self._earlier_cache)
            data = json.loads(ckpt.read_text())
            log.info("resuming %s after iteration %d", self.out, data["iteration"])
            return SearchState(data["iteration"], data["archive"], data["history"], data["population"],
                               data["rng_state"])
        if self.out.exists() and any(self.out.iterdir()) and not resume:
            if not force:
                raise EenasError(f"{self.out} is not empty: pass --resume to continue it or --force to overwrite it")
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self._write_config()
        return SearchState()

    def _write_config(self) -> None:
        """``config.json``: every setting, the versions, and the cache entries the run loaded and trained.

        Over every session of a resumed run; an entry one session trained and a later one
        loaded counts as trained.
        """
        cache = self.pipeline.cache
        trained = list(dict.fromkeys([*self._earlier_cache["trained"], *cache.trained]))
        done = set(trained)
        loaded = [k for k in dict.fromkeys([*self._earlier_cache["loaded"], *cache.loaded]) if k not in done]
        write_json(self.out / "config.json", {"search": self.cfg.to_dict(), "eenas_version": __version__,
                                              "python": platform.python_version(), "versions": _versions(),
                                              "cache": {"loaded": loaded, "trained": trained}})

    def _checkpoint(self) -> None:
        self.state.rng_state = self.rng.bit_generator.state
        s = self.state
        write_json(self.out / CHECKPOINT, {"version": CHECKPOINT_VERSION, "iteration": s.iteration,
                                           "archive": s.archive, "history": s.history,
                                           "population": s.population, "rng_state": s.rng_state})
        self._write_config()

    @property
    def done(self) -> bool:
        return self.state.iteration > self.cfg.search.iterations

    # -------------------------------------------------------------------- loop
    def run(self) -> list[dict]:
        """Run (or finish) every iteration, then the holdout; returns the Pareto records."""
        self._check_feasible_bounds()
        total = self.cfg.search.iterations + 1
        done = min(self.state.iteration, total)
        with tqdm(total=total, initial=done, desc="search", dynamic_ncols=True, disable=None) as bar:
            while not self.done:
                row = self.step()
                bar.update(1)
                bar.set_postfix(true_evals=row["true_evaluations"], best_et_ratio=f"{row['best_et_ratio']:.3f}")
        self.held_out = self.holdout()
        self._write_config()
        return self.pareto()

    def holdout(self) -> Holdout | None:
        """The final predictor on ``--holdout`` random archs the search never evaluated (``holdout.csv``).

        The predictor is fitted on the whole final archive; the archs are drawn by a generator of
        their own and never enter the archive, so the front does not depend on them.
        """
        n = self.cfg.search.holdout
        if not n:
            return None
        rng = np.random.default_rng([self.cfg.seed, HOLDOUT_STREAM])
        predictor = Predictor(self.space, self.cfg.seed).fit(*self._training_set())
        problem = SurrogateProblem(self.space, self.evaluator, predictor, self.constraints)
        result = measure(problem, draw(problem, self._seen, n, int(rng.integers(2**31 - 1))), rng)
        write_holdout(self.out, result)
        return result

    def step(self) -> dict:
        """One iteration (the first is the initial sample), then a checkpoint."""
        start = time.perf_counter()
        it = self.state.iteration
        seed = int(self.rng.integers(2**31 - 1))
        problem = SurrogateProblem(self.space, self.evaluator, None, self.constraints)
        row: dict = {"iteration": it, "seed": seed}
        if it == 0:
            X = random_genomes(problem, self.cfg.search.initial, seed)
            new = self._evaluate(X, "initial", it)
            row.update(predictor="", cv_tau=np.nan, tau_new=np.nan, rmse_new=np.nan, et_tau_new=np.nan, free=0)
        else:
            predictor = Predictor(self.space, seed).fit(*self._training_set())
            problem.predictor = predictor
            pop = self._nsga2(problem, seed)
            chosen, predicted, free = self._select(problem, pop, self.cfg.search.per_iteration)
            new = self._evaluate(chosen, "selected", it)
            self._evaluate(free, "free", it)
            row.update(predictor=predictor.name, cv_tau=predictor.cv_tau, free=len(free),
                       **_quality(predicted, new))
            self.state.population = pop.tolist()
        self.state.iteration += 1
        front = self.pareto()
        ok = [r for r in self.state.archive if r["status"] == "ok"]
        row.update(new=len(new), true_evaluations=len(ok), heads_known=len(self.evaluator.known),
                   front_size=len(front), hypervolume=self._hypervolume(),
                   best_et_ratio=min((r["et_ratio"] for r in front), default=np.nan),
                   wall_s=time.perf_counter() - start)
        self.state.history.append(row)
        self._checkpoint()
        write_progress(self.out, self.state)
        log.info("iteration %d: %d new true evaluations (%d in all), front %d, best ET ratio %.3f",
                 it, len(new), len(ok), len(front), row["best_et_ratio"])
        return row

    def _nsga2(self, problem: SurrogateProblem, seed: int) -> np.ndarray:
        s = self.cfg.search
        start = np.array(self.state.population) if self.state.population else ExitSampling()
        algorithm = NSGA2(pop_size=s.population, sampling=start, crossover=UX(), mutation=ResetMutation(),
                          repair=ExitRepair(), eliminate_duplicates=True)
        res = minimize(problem, algorithm, ("n_gen", s.generations), seed=seed, verbose=False)
        return np.asarray(res.pop.get("X"), dtype=int)

    def _select(self, problem: SurrogateProblem, X: np.ndarray,
                k: int) -> tuple[np.ndarray, dict[str, Score], np.ndarray]:
        """Up to ``k`` untrained candidates spread along the predicted front (then the most
        uncertain) with their predicted scores, and the front's exactly-scored members not yet
        in the archive."""
        X = np.unique(X, axis=0)
        X = X[[self.space.genome_key(x) not in self._seen for x in X]]
        if not len(X):
            return X, {}, X
        scores, exact = problem.scores(X)
        F = np.array([[-s.accuracy, s.average_et] for s in scores])
        feasible = np.array([max(s.violations(self.constraints)) <= 0 for s in scores])
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
        return X[picks], {self.space.genome_key(X[i]): scores[i] for i in picks}, free

    # ------------------------------------------------------------- evaluation
    def _evaluate(self, X: np.ndarray, source: str, iteration: int) -> list[dict]:
        records = []
        for x in np.atleast_2d(X) if len(X) else []:
            key = self.space.genome_key(x)
            if key in self._seen:
                continue
            arch = self.space.decode(x)
            new_heads = len(self.evaluator.missing(arch))
            score, status = self.evaluator.try_score(arch)
            test = self.evaluator.score(arch, "test").accuracy if score else np.nan
            record = self._record(key, arch, score, status, test, source, iteration, new_heads)
            self.state.archive.append(record)
            self._seen.add(key)
            records.append(record)
        return [r for r in records if r["status"] == "ok"]

    def _record(self, key, arch, score: Score | None, status, test_acc, source, iteration, new_heads) -> dict:
        rec = {"iteration": iteration, "source": source, "status": status, "genome": key, "exits": exits_text(arch),
               "n_exits": len(arch.exits), "backbone_bits": arch.quant.backbone.weights,
               "exit_bits": arch.quant.exits.weights, "new_heads": new_heads}
        if score is None:
            return {**rec, "feasible": False}
        cost = score.cost
        return {**rec, "accuracy": score.accuracy, "test_accuracy": test_acc,
                "static_accuracy": score.static_accuracy,
                "accuracy_drop": 100 * (score.static_accuracy - score.accuracy),
                "exit_ratios": _join(score.exit_ratios),
                "cum_cycles": _join(e.cum_latency_cycles for e in cost.exits),
                "cum_energy_pj": _join(e.cum_energy_pj for e in cost.exits),
                "average_et": score.average_et, "static_et": cost.static_et, "et_ratio": score.et_ratio,
                "average_latency": score.average_latency, "average_energy": score.average_energy,
                "feasible": bool(max(score.violations(self.constraints)) <= 0)}

    def _training_set(self):
        ok = [r for r in self.state.archive if r["status"] == "ok"]
        X = np.array([_genome(r) for r in ok])
        ratios = [np.array([float(v) for v in r["exit_ratios"].split(";")]) for r in ok]
        return X, ratios, np.array([r["accuracy"] for r in ok])

    # ---------------------------------------------------------------- results
    def pareto(self) -> list[dict]:
        """Non-dominated feasible records (accuracy up, average ET down), cheapest first."""
        ok = [r for r in self.state.archive if r["status"] == "ok" and r["feasible"]]
        if not ok:
            return []
        F = np.array([[-r["accuracy"], r["average_et"]] for r in ok])
        front = [ok[i] for i in NonDominatedSorting().do(F, only_non_dominated_front=True)]
        front.sort(key=lambda r: (r["average_et"], -r["accuracy"], r["n_exits"], r["genome"]))
        # Ties in both objectives (e.g. an unused extra exit) keep only the simplest network.
        unique = {}
        for r in front:
            unique.setdefault((round(r["accuracy"], 9), float(f"{r['average_et']:.9g}")), r)
        return list(unique.values())

    def reference_et(self) -> float:
        """The static backbone's ET at the space's highest precision (normalises hypervolume)."""
        top = max(self.space.bits)
        return self.evaluator.cost(self.space.decode(self._static_genome(top))).static_et

    def _static_genome(self, bits: int) -> np.ndarray:
        x = np.zeros(self.space.n_var, dtype=int)
        x[0] = 1  # any exit: only the static cost is read
        x[3 * self.space.n_mounts :] = self.space.bits.index(bits)
        return x

    def _hypervolume(self) -> float:
        from pymoo.indicators.hv import HV

        front = self.pareto()
        if not front:
            return 0.0
        ref = self.reference_et()
        F = np.array([[1 - r["accuracy"], r["average_et"] / ref] for r in front])
        return float(HV(ref_point=np.array([1.0, 1.5]))(F))

    def _check_feasible_bounds(self) -> None:
        """Refuse latency/energy bounds no network in the space can meet."""
        if self.cfg.max_latency is None and self.cfg.max_energy is None:
            return
        best_t = best_e = np.inf
        for h in range(1, len(self.space.heads) + 1):
            for b in range(len(self.space.bits)):
                x = np.zeros(self.space.n_var, dtype=int)
                x[0] = h
                x[3 * self.space.n_mounts :] = b
                first = self.evaluator.cost(self.space.decode(x)).exits[0]
                best_t, best_e = min(best_t, first.cum_latency_cycles), min(best_e, first.cum_energy_pj)
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
            cost = self.evaluator.cost(self.space.decode(self._static_genome(bits)))
            rows.append({"bits": bits, "accuracy": self.evaluator.static_accuracy(p),
                         "test_accuracy": self.evaluator.static_accuracy(p, "test"), "static_et": cost.static_et})
        return rows


def _quality(predicted: dict[str, Score], new: list[dict]) -> dict:
    """Out-of-sample quality of the predictions made for this iteration's new true evaluations."""
    new = [r for r in new if r["genome"] in predicted]
    if not new:
        return {"tau_new": np.nan, "rmse_new": np.nan, "et_tau_new": np.nan}
    true_acc = np.array([r["accuracy"] for r in new])
    pred_acc = np.array([predicted[r["genome"]].accuracy for r in new])
    true_et = np.array([r["average_et"] for r in new])
    pred_et = np.array([predicted[r["genome"]].average_et for r in new])
    return {"tau_new": kendall(pred_acc, true_acc), "rmse_new": float(np.sqrt(np.mean((pred_acc - true_acc) ** 2))),
            "et_tau_new": kendall(pred_et, true_et)}


def _genome(record: dict) -> np.ndarray:
    return np.array([int(v) for v in record["genome"].split("-")])


def _cores(hardware: str) -> int:
    from eenas.hardware import load_accelerator

    return len(load_accelerator(hardware).cores)


def _versions() -> dict:
    import pymoo
    import sklearn
    import torch

    return {"torch": torch.__version__, "pymoo": pymoo.__version__, "sklearn": sklearn.__version__,
            "numpy": np.__version__}
