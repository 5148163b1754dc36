"""Search-loop overhead and predictor quality (``benchmarks/run.py search``).

Runs a small synthetic search (tiny budget, its own temporary cache), then measures:

* NSGA-II overhead per generation on the surrogate problem (predictor + exact scoring from
  cached logits + cost model), no training, at population 40;
* the predictor's out-of-sample Kendall tau: fitted on the run's archive, scored on 200 fresh
  random candidates built only from heads the run already trained, whose true accuracy is
  therefore exact and free.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.operators.crossover.ux import UX
from pymoo.optimize import minimize

from eenas.arch import ExitConfig
from eenas.search import SearchConfig, SearchRun, build_run
from eenas.search.operators import ExitRepair, ExitSampling, ResetMutation
from eenas.search.predictor import Predictor, kendall
from eenas.search.problem import SurrogateProblem

GENERATIONS = 20
POPULATION = 40
HELD_OUT = 200


def _known_candidates(run: SearchRun, n: int, seed: int) -> np.ndarray:
    """Random genomes that use only (mount, head) pairs and precisions the run has trained."""
    rng = np.random.default_rng(seed)
    space = run.space
    known = sorted({(mount, head, pb.weights, pe.weights) for pb, mount, head, pe in run.evaluator.known})
    out = []
    while len(out) < n:
        pb, pe = known[rng.integers(len(known))][2:]
        heads: dict[int, list[str]] = {}  # mount -> the heads trained there at these precisions
        for mo, h, b, e in known:
            if (b, e) == (pb, pe):
                heads.setdefault(mo, []).append(h)
        mounts = rng.choice(sorted(heads), size=min(len(heads), rng.integers(1, 4)), replace=False)
        exits = [ExitConfig(int(mo), heads[mo][rng.integers(len(heads[mo]))],
                            space.thresholds[rng.integers(len(space.thresholds))]) for mo in sorted(mounts)]
        out.append(space.encode(space.arch(tuple(exits), pb, pe)))
    return np.unique(np.array(out), axis=0)


def run() -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SearchConfig.create("synthetic", "tiny", overrides={"initial": 12, "iterations": 2, "holdout": 0},
                                  bits=(8, 4))
        search = build_run(cfg, Path(tmp) / "run", cache_dir=Path(tmp) / "cache", device="cpu")
        search.run()
        X, ratios, acc = search.archive.training_set()
        predictor = Predictor(search.space, seed=0).fit(X, ratios, acc)
        problem = SurrogateProblem(search.space, search.evaluator, predictor, search.constraints)
        space = search.space
        algorithm = NSGA2(pop_size=POPULATION, sampling=ExitSampling(space), crossover=UX(),
                          mutation=ResetMutation(space), repair=ExitRepair(space), eliminate_duplicates=True)
        start = time.perf_counter()
        minimize(problem, algorithm, ("n_gen", GENERATIONS), seed=0, verbose=False)
        per_gen = (time.perf_counter() - start) / GENERATIONS
        held = _known_candidates(search, HELD_OUT, seed=1)
        true = np.array([search.evaluator.score(search.space.decode(x)).accuracy for x in held])
        tau = kendall(predictor.predict(held).accuracy, true)
    return pd.DataFrame([
        {"benchmark": "search", "metric": f"NSGA-II overhead per generation (pop {POPULATION}, no training)",
         "value": 1000 * per_gen, "unit": "ms", "target": ""},
        {"benchmark": "search", "metric": f"predictor out-of-sample Kendall tau ({len(held)} candidates)",
         "value": tau, "unit": "", "target": "> 0"},
    ])


if __name__ == "__main__":
    print(run().to_markdown(index=False, floatfmt=".4g"))
