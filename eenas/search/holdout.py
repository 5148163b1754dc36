"""The predictor's quality on held-out archs, with bootstrap confidence intervals.

The per-iteration tau in ``predictor.csv`` is measured on the few candidates the search
chose to train because the predictor liked them: a handful of points, biased towards the
front.  After the last iteration, this draws random valid archs the search never evaluated
(those with a head it never trained first: an arch made only of trained heads is scored
exactly by the search anyway), predicts them with a predictor fitted on the final archive,
then evaluates them truly.  They use their own generator and never enter the archive, so
the search's random stream and its front are the same with or without them.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eenas.search.operators import random_genomes
from eenas.search.problem import SurrogateProblem
from eenas.search.space import Genome, exits_text, genome_text

HOLDOUT_STREAM = 1  # second word of the holdout generator's seed: a stream apart from the search's
RESAMPLES = 2000  # bootstrap resamples per metric
DRAWS_PER_CANDIDATE = 50  # random genomes drawn per wanted candidate, to find ones with untrained heads
# metric: (true column, predicted column, statistic)
METRICS = {
    "accuracy_tau": ("accuracy", "predicted_accuracy", "tau"),
    "accuracy_rmse": ("accuracy", "predicted_accuracy", "rmse"),
    "average_et_tau": ("average_et", "predicted_average_et", "tau"),
    "et_ratio_rmse": ("et_ratio", "predicted_et_ratio", "rmse"),
}


def kendall_tau_b(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-b (scipy's default) over the last axis, vectorised over the others; NaN for a constant row.

    Vectorised because the bootstrap needs 2,000 of them per metric.
    """
    i, j = np.triu_indices(a.shape[-1], k=1)
    da, db = np.sign(a[..., i] - a[..., j]), np.sign(b[..., i] - b[..., j])
    denominator = np.sqrt(np.count_nonzero(da, axis=-1) * np.count_nonzero(db, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (da * db).sum(axis=-1) / denominator, np.nan)


def rmse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean((a - b) ** 2, axis=-1))


STATISTICS = {"tau": kendall_tau_b, "rmse": rmse}


@dataclass(frozen=True)
class Holdout:
    points: pd.DataFrame  # per held-out arch: true and predicted objectives, heads the search never trained
    metrics: pd.DataFrame  # per metric: value, 95% bootstrap interval, candidates, with_new_heads

    def summary(self) -> str:
        return summary_line(self.metrics)


def draw(problem: SurrogateProblem, seen: Container[Genome], n: int, seed: int) -> np.ndarray:
    """Up to ``n`` random valid genomes not in ``seen``; those with a head the run never evaluated first."""
    space, evaluator = problem.space, problem.evaluator
    X = random_genomes(space, n * DRAWS_PER_CANDIDATE, seed)
    first: dict[Genome, int] = {}
    for i, x in enumerate(X):
        first.setdefault(space.genome(x), i)
    fresh = [i for key, i in first.items() if key not in seen]
    new = [i for i in fresh if evaluator.missing(space.decode(X[i]))]
    rest = [i for i in fresh if i not in set(new)]
    return X[(new + rest)[:n]]


def measure(problem: SurrogateProblem, X: np.ndarray, rng: np.random.Generator) -> Holdout:
    """Predict ``X`` with ``problem.predictor``, then evaluate every one truly (training what it lacks, but leaving
    what the search scores exactly as it was).  Objectives beyond accuracy and average ET get a column each, true
    and predicted, and a Kendall tau."""
    space, evaluator = problem.space, problem.evaluator
    extra = [o for o in problem.objectives if o.name not in ("accuracy", "average_et")]
    archs = [space.decode(x) for x in X]
    rows = []
    for x, arch, guess in zip(X, archs, problem.predicted(X, archs) if archs else []):
        score, _ = evaluator.try_score(arch)
        if score is None:  # diverged: logged by the evaluator
            continue
        rows.append({"genome": genome_text(space.genome(x)), "exits": exits_text(arch),
                     "new_heads": len(evaluator.missing(arch)),
                     "accuracy": score.accuracy, "predicted_accuracy": guess.accuracy,
                     "average_et": score.average_et, "predicted_average_et": guess.average_et,
                     "et_ratio": score.et_ratio, "predicted_et_ratio": guess.et_ratio,
                     **{o.name: o.read(score) for o in extra},
                     **{f"predicted_{o.name}": o.read(guess) for o in extra}})
    columns = ["genome", "exits", "new_heads", "accuracy", "predicted_accuracy", "average_et", "predicted_average_et",
               "et_ratio", "predicted_et_ratio", *(c for o in extra for c in (o.name, f"predicted_{o.name}"))]
    wanted = {**METRICS, **{f"{o.name}_tau": (o.name, f"predicted_{o.name}", "tau") for o in extra}}
    points = pd.DataFrame(rows, columns=columns)
    return Holdout(points, metrics(points, rng, wanted=wanted))


def metrics(points: pd.DataFrame, rng: np.random.Generator, resamples: int = RESAMPLES,
            wanted: dict[str, tuple[str, str, str]] = METRICS) -> pd.DataFrame:
    """Each metric of ``wanted`` (default :data:`METRICS`) on ``points`` with its 95% percentile-bootstrap
    interval (NaN below 2 points)."""
    n = len(points)
    resampled = rng.integers(0, n, size=(resamples, n)) if n >= 2 else None
    rows = []
    for name, (true, predicted, statistic) in wanted.items():
        value = low = high = np.nan
        if resampled is not None:
            t, p = points[true].to_numpy(float), points[predicted].to_numpy(float)
            stat = STATISTICS[statistic]
            value = float(stat(p, t))
            boot = stat(p[resampled], t[resampled])
            if not np.isnan(boot).all():
                low, high = (float(v) for v in np.nanpercentile(boot, [2.5, 97.5]))
        rows.append({"metric": name, "value": value, "ci_low": low, "ci_high": high, "candidates": n,
                     "with_new_heads": int((points["new_heads"] > 0).sum())})
    return pd.DataFrame(rows)


def summary_line(metrics: pd.DataFrame) -> str:
    """One line: every metric with its interval (accuracy RMSE in points)."""
    m = metrics.set_index("metric")

    def show(name: str, scale: float = 1.0, fmt: str = ".2f") -> str:
        value, low, high = (scale * m.loc[name, c] for c in ("value", "ci_low", "ci_high"))
        return f"{value:{fmt}} [{low:{fmt}}, {high:{fmt}}]"

    n, new = int(m["candidates"].iloc[0]), int(m["with_new_heads"].iloc[0])
    return (f"held-out predictor quality on {n} random archs ({new} with a head the search never trained), "
            f"95% bootstrap intervals: accuracy tau {show('accuracy_tau')}, RMSE {show('accuracy_rmse', 100, '.1f')} "
            f"points; average ET tau {show('average_et_tau')}, ET-ratio RMSE {show('et_ratio_rmse', 1, '.3f')}")

