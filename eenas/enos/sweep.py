"""The accuracy-against-energy comparison: ENOS at several energy weights against single-operator networks.

For every seed: one search per energy weight, and one network per candidate of the energy
table with every layer on that candidate; every network is trained by the same recipe
(:func:`eenas.enos.search.train_assignment`).  Then, for every single-operator network,
ENOS at matched energy: λ is bisected (on the searches' energies; the searches only ever
see training and validation images) for the costliest searched network that needs no more
energy than the single-operator one, and that network is trained and tested.

Outputs under ``--out``: ``sweep.csv`` (every run and seed), ``summary.csv``/``.md`` (mean ±
std over seeds), ``iso_energy.csv``/``.md`` (ENOS at each single-operator network's energy,
the accuracy difference and its 95% confidence interval), ``envelope.csv`` (the
accuracy-energy envelopes) and ``sweep.png``.  Each run is cached under ``--cache-dir``,
so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from eenas.enos.diagnostics import candidate_shares, search_diagnostics
from eenas.enos.search import (
    EnosConfig,
    RunResult,
    Workspace,
    check_energy_weight,
    run_search,
    search_assignment,
    search_key,
    searched,
    train_assignment,
    train_key,
    train_single_operator,
    write_run,
)
from eenas.errors import EenasError
from eenas.io import write_text
from eenas.report.tables import markdown, write_csv
from eenas.train.cache import Cache
from eenas.train.loops import TrainingDiverged
from eenas.train.pipeline import amp_name

log = logging.getLogger(__name__)

MATCH_TOLERANCE = 0.05  # bisection stops once a search lands within 5% below the target energy
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Run:
    """One trained network of the sweep."""

    kind: str  # enos, single or matched (ENOS bisected to a single-operator network's energy)
    seed: int
    result: RunResult
    energy_weight: float | None = None
    target: str | None = None  # matched: the single-operator network whose energy it matches


@dataclass(frozen=True)
class SweepResult:
    runs: tuple[Run, ...]
    test_images: int

    def points(self) -> pd.DataFrame:
        return pd.DataFrame([
            {"network": r.result.label, "kind": r.kind, "energy_weight": r.energy_weight, "target": r.target,
             "seed": r.seed, "energy_pj": r.result.energy_pj, "val_accuracy": r.result.val_accuracy,
             "test_accuracy": r.result.test_accuracy} for r in self.runs
        ])

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation over seeds of every ENOS λ and single-operator network."""
        points = self.points()
        points = points[points["kind"] != "matched"].fillna({"energy_weight": -1.0})
        rows = []
        for (kind, network, weight), group in points.groupby(["kind", "network", "energy_weight"], sort=False):
            done = group.dropna(subset=["test_accuracy"])  # a diverged training has no accuracy to average
            rows.append({"network": network, "kind": kind, "energy_weight": None if weight < 0 else weight,
                         "seeds": len(done), "diverged": len(group) - len(done), **_mean_std(done, "energy_pj"),
                         **_mean_std(done, "val_accuracy"), **_mean_std(done, "test_accuracy")})
        return pd.DataFrame(rows)

    def iso_energy(self) -> pd.DataFrame:
        """For each single-operator network, ENOS at no more energy: accuracies and their difference."""
        rows = []
        singles = [r for r in self.runs if r.kind == "single"]
        for label in dict.fromkeys(r.result.label for r in singles):
            base = {r.seed: r.result for r in singles if r.result.label == label}
            match = {r.seed: r for r in self.runs if r.kind == "matched" and r.target == label}
            seeds = sorted(set(base) & set(match))
            if not seeds:
                rows.append({"single": label, "single_energy_pj": np.mean([b.energy_pj for b in base.values()]),
                             "matched": False})
                continue
            a = np.array([match[s].result.test_accuracy for s in seeds])
            b = np.array([base[s].test_accuracy for s in seeds])
            low, high = difference_interval(a, b, self.test_images)
            rows.append({
                "single": label, "single_energy_pj": np.mean([base[s].energy_pj for s in seeds]), "matched": True,
                "enos_energy_pj": np.mean([match[s].result.energy_pj for s in seeds]),
                "enos_energy_weights": " ".join(f"{match[s].energy_weight:.3g}" for s in seeds),
                "seeds": len(seeds), "single_test_accuracy": b.mean(), "enos_test_accuracy": a.mean(),
                "difference_points": 100 * (a.mean() - b.mean()), "ci_low_points": 100 * low,
                "ci_high_points": 100 * high,
            })
        return pd.DataFrame(rows)

    def envelope(self) -> pd.DataFrame:
        """The accuracy-energy envelope (Pareto front of seed means) of ENOS and of the single-operator networks.

        A matched point is ENOS matched to one single-operator network, averaged over every seed whatever λ each
        seed's match has: grouped by its λ instead, a point could stand on one seed while the others stand on three.
        """
        points = self.points().dropna(subset=["test_accuracy"])
        matched = points["kind"] == "matched"
        points["network"] = points["network"].where(~matched, "ENOS matched to " + points["target"].fillna(""))
        means = points.groupby(["kind", "network"]).agg(
            energy_pj=("energy_pj", "mean"), test_accuracy=("test_accuracy", "mean"),
        ).reset_index()
        means["family"] = np.where(means["kind"] == "single", "single", "enos")
        fronts = [pareto_front(group).assign(family=family) for family, group in means.groupby("family")]
        return pd.concat(fronts, ignore_index=True)[["family", "network", "energy_pj", "test_accuracy"]]


def _mean_std(group: pd.DataFrame, column: str) -> dict:
    values = group[column].to_numpy(dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return {f"{column}_mean": float(values.mean()), f"{column}_std": std}


def difference_interval(a: np.ndarray, b: np.ndarray, test_images: int) -> tuple[float, float]:
    """A 95% interval for ``mean(a) - mean(b)``, test accuracies of two networks over the same seeds.

    The seed-to-seed spread of the paired differences (Student t, ``seeds - 1`` degrees of
    freedom) and the binomial sampling error of the test set (both accuracies, as if
    independent, which overstates it) are added in quadrature; with one seed only the
    binomial term is left and the quantile is the normal one.
    """
    d = a - b
    n = len(d)
    binomial = (a.mean() * (1 - a.mean()) + b.mean() * (1 - b.mean())) / test_images
    seed_var = d.var(ddof=1) / n if n > 1 else 0.0
    quantile = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) if n > 1 else stats.norm.ppf(0.5 + CONFIDENCE / 2)
    half = float(quantile * math.sqrt(seed_var + binomial))
    return float(d.mean()) - half, float(d.mean()) + half


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """The points no other point beats in both energy (lower) and accuracy (higher), by energy."""
    ordered = points.sort_values(["energy_pj", "test_accuracy"], ascending=[True, False])
    best, keep = -math.inf, []
    for index, accuracy in ordered["test_accuracy"].items():
        if accuracy > best:
            keep.append(index)
            best = accuracy
    return ordered.loc[keep]


def parse_energy_weights(text: str) -> tuple[float, ...]:
    try:
        weights = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise EenasError(f"--energy-weights: '{text}' is not a comma-separated list of numbers") from None
    if not weights:
        raise EenasError("--energy-weights: give at least one energy weight")
    for w in weights:
        check_energy_weight(w)
    return weights


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise EenasError(f"--seeds: '{text}' is not a comma-separated list of integers") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise EenasError(f"--seeds: expected distinct non-negative integers, got '{text}'")
    return seeds


def bisect_energy_weight(energy_at: Callable[[float], float], target_pj: float, grid: tuple[float, ...],
                         steps: int) -> float:
    """The energy weight whose search needs the most energy without exceeding ``target_pj``.

    ``energy_at(λ)`` is a search's energy (cached, so the grid costs nothing twice).  The
    bracket from the grid is halved ``steps`` times in log λ (or widened by 4x while every
    λ tried is too dear).  Energy need not fall strictly with λ, so the answer is the best
    of every λ tried, not the bracket's end.  Raises when no λ tried fits the target.
    """
    tried = {w: energy_at(w) for w in grid}
    for _ in range(steps):
        fits = [w for w, e in tried.items() if e <= target_pj]
        if fits and max(tried[w] for w in fits) >= (1 - MATCH_TOLERANCE) * target_pj:
            break
        high = min(fits, default=None)
        dear = [w for w, e in tried.items() if e > target_pj and (high is None or w < high)]
        low = max(dear, default=None)
        if high is None:
            mid = 4 * max(max(tried), 1.0)
        elif low is None:
            break  # the smallest λ tried already fits: nothing dearer to find below it
        else:
            mid = math.sqrt(low * high) if low > 0 else high / 4
        tried[mid] = energy_at(mid)
    fits = [w for w, e in tried.items() if e <= target_pj]
    if not fits:
        raise EenasError(f"no energy weight tried ({', '.join(f'{w:g}' for w in sorted(tried))}) "
                         f"reaches {target_pj:.4g} pJ")
    return max(fits, key=lambda w: (tried[w], -w))


def run_sweep(cfg: EnosConfig, energy_weights: tuple[float, ...], seeds: tuple[int, ...], out: Path,
              cache_dir: str | None, bisection_steps: int = 3, workers: int | None = None,
              scheduler: str | None = None) -> SweepResult:
    """Every seed: searches at each energy weight, every single-operator baseline, and ENOS matched to each.

    With ``workers`` or ``scheduler``, the runs that depend on no other are trained on a Dask
    cluster first (:func:`_prefetch`); the bisections then run here, on the cached results.
    """
    cache = Cache(cache_dir)
    if workers is not None or scheduler is not None:
        from eenas.train.cluster import Cluster

        with Cluster.connect(workers, scheduler) as cluster:
            _prefetch(cluster, cache, [Workspace(replace(cfg, seed=seed)) for seed in seeds], energy_weights)
    runs: list[Run] = []
    test_images = 0
    for seed in seeds:
        ws = Workspace(replace(cfg, seed=seed))
        test_images = len(ws.splits.test)
        for w in energy_weights:
            result = _attempt(f"enos λ={w:g}", seed, partial(run_search, replace(ws.cfg, energy_weight=w), ws, cache))
            write_run(result, out / f"seed_{seed}" / f"lambda_{w:g}")
            runs.append(Run("enos", seed, result, energy_weight=w))
        for index, label in enumerate(ws.table.labels):
            result = _attempt(label, seed, partial(train_single_operator, ws.cfg, index, ws, cache))
            write_run(result, out / f"seed_{seed}" / "single" / label.replace("/", "_"))
            runs.append(Run("single", seed, result))
            if not math.isnan(result.energy_pj):  # a diverged baseline has nothing to match
                runs += _matched(ws, cache, result, energy_weights, bisection_steps)
    sweep = SweepResult(tuple(runs), test_images)
    write_sweep(sweep, cfg, out)
    return sweep


def _prefetch(cluster, cache: Cache, spaces: list[Workspace], grid: tuple[float, ...]) -> None:
    """On a cluster: every seed's searches on the λ grid and single-operator trainings, then the trainings
    of the searched assignments, each once and stored here.  The sweep then finds them cached; a job
    that kept failing (a diverged training, say) is run here again, as a serial sweep would."""
    searches, singles = [], []
    for ws in spaces:
        searches += [(search_key(c, ws), search_job, (c, amp_name(ws.amp))) for c in _grid(ws, grid)]
        layers = len(ws.network()[0].layers)
        singles += [(train_key(ws, [i] * layers), train_job, (ws.cfg, [i] * layers, label, amp_name(ws.amp)))
                    for i, label in enumerate(ws.table.labels)]
    cluster.run(cache, "enos", searches + singles)
    trainings = []
    for ws in spaces:
        for c in _grid(ws, grid):
            entry = cache.load("enos", search_key(c, ws))
            if entry is not None:  # else the sweep runs the search itself
                found = RunResult.from_dict(entry)
                trainings.append((train_key(ws, found.picks), train_job,
                                  (ws.cfg, found.picks, found.label, amp_name(ws.amp))))
    cluster.run(cache, "enos", trainings)


def _grid(ws: Workspace, grid: tuple[float, ...]) -> list[EnosConfig]:
    return [replace(ws.cfg, energy_weight=w) for w in grid]


def search_job(cfg: EnosConfig, amp: str) -> dict:
    """On a cluster worker: the search at ``cfg`` (the entry :func:`searched` caches)."""
    return search_assignment(cfg, Workspace(cfg, amp)).to_dict()


def train_job(cfg: EnosConfig, picks: list[int], label: str, amp: str) -> dict:
    """On a cluster worker: an assignment trained by the one recipe (the entry ``run_search`` caches)."""
    return train_assignment(Workspace(cfg, amp), picks, label)


def _matched(ws: Workspace, cache: Cache, single: RunResult, grid: tuple[float, ...], steps: int) -> list[Run]:
    """ENOS bisected to ``single``'s energy and trained, or nothing if no λ reaches it."""
    def energy_at(w: float) -> float:
        return searched(replace(ws.cfg, energy_weight=w), ws, cache).energy_pj

    try:
        weight = bisect_energy_weight(energy_at, single.energy_pj, grid, steps)
        result = run_search(replace(ws.cfg, energy_weight=weight), ws, cache)
    except (EenasError, TrainingDiverged) as exc:
        log.warning("no ENOS network matches %s (seed %d): %s", single.label, ws.cfg.seed, exc)
        return []
    return [Run("matched", ws.cfg.seed, result, energy_weight=weight, target=single.label)]


def _attempt(network: str, seed: int, run: Callable[[], RunResult]) -> RunResult:
    """A run, or a NaN-accuracy placeholder (not cached) under the network's label if its training diverged."""
    try:
        return run()
    except TrainingDiverged as exc:
        log.warning("%s seed %d diverged (%s); recorded with NaN accuracy", network, seed, exc)
        return RunResult(network, math.nan, math.nan, (), 0.0, {"diverged": str(exc)})


def write_sweep(sweep: SweepResult, cfg: EnosConfig, out: Path) -> None:
    points, summary, iso, envelope = sweep.points(), sweep.summary(), sweep.iso_energy(), sweep.envelope()
    title = f"{cfg.model} on {cfg.dataset}, scheme {cfg.scheme}, budget {cfg.budget}"
    for name, table in (("sweep", points), ("summary", summary), ("iso_energy", iso), ("envelope", envelope)):
        write_csv(out, name, table)
    write_text(out / "summary.md", f"# ENOS sweep: {title}\n\n" + markdown(summary) + "\n")
    write_text(out / "iso_energy.md", (
        f"# ENOS at matched energy: {title}\n\nDifference: ENOS minus single-operator test accuracy, points, "
        f"with a {CONFIDENCE:.0%} interval (seeds and test-set sampling).\n\n" + markdown(iso) + "\n"
    ))
    diagnostics, shares = search_diagnostics(sweep.runs), candidate_shares(sweep.runs)
    write_csv(out, "search_diagnostics", diagnostics)
    write_csv(out, "candidate_shares", shares)
    write_text(out / "search_diagnostics.md", (
        f"# Why the searches chose what they chose: {title}\n\nPer energy weight, over layers and seeds "
        "(eenas.enos.diagnostics): confidence, agreement of the seeds, the retrained network against the discretised "
        "supernet on validation, and the MAC-weighted test accuracy of the chosen candidates' single-operator "
        "networks.\n\n" + markdown(diagnostics) + "\n\n## Share of the MACs on each candidate\n\n" + markdown(shares)
        + "\n"))
    _figure(sweep, envelope, title, out / "sweep.png")
    log.info("sweep tables and figure in %s", out)


ZOOM_POINTS = 10  # the right panel shows the networks within this many points of the most accurate


def _figure(sweep: SweepResult, envelope: pd.DataFrame, title: str, path: Path) -> None:
    """Every network and seed and both envelopes: all of them, and beside it the accurate end enlarged, where the
    comparison is decided (binary, xnor and mf networks sit tens of points lower)."""
    from eenas.report.figures import DPI, plt, save  # matplotlib only when a sweep draws: eenas.enos imports this

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=DPI)
    points = sweep.points().dropna(subset=["test_accuracy"])
    for ax, zoomed in zip(axes, (False, True)):
        _draw(ax, points, envelope, minor_labels=zoomed)  # the zoom spans less than a decade
    top = 100 * points["test_accuracy"].max()
    near = points[100 * points["test_accuracy"] >= top - ZOOM_POINTS]["energy_pj"] / 1e3
    axes[1].set_ylim(top - ZOOM_POINTS, top + 1)
    axes[1].set_xlim(near.min() / 1.25, near.max() * 1.25)
    axes[1].set_title(f"within {ZOOM_POINTS} points of the most accurate", fontsize=9)
    axes[0].set_title(title, fontsize=9)
    axes[0].legend(fontsize=7, loc="best")
    save(fig, path)


def _draw(ax, points: pd.DataFrame, envelope: pd.DataFrame, minor_labels: bool) -> None:
    from matplotlib.ticker import FuncFormatter

    style = {"single": ("s", "C1", "single-operator"), "enos": ("o", "C0", "ENOS, λ grid"),
             "matched": ("D", "C2", "ENOS, λ matched to a single-operator energy")}
    for kind, (marker, colour, label) in style.items():
        part = points[points["kind"] == kind]
        ax.scatter(part["energy_pj"] / 1e3, 100 * part["test_accuracy"], marker=marker, color=colour, alpha=0.45,
                   s=18, label=f"{label} (each seed)")
    for family, colour in (("enos", "C0"), ("single", "C1")):
        front = envelope[envelope["family"] == family]
        ax.step(front["energy_pj"] / 1e3, 100 * front["test_accuracy"], where="post", color=colour,
                label=f"{'ENOS' if family == 'enos' else 'single-operator'} envelope (seed means)")
    for _, row in points[points["kind"] == "single"].drop_duplicates("network").iterrows():
        ax.annotate(row["network"], (row["energy_pj"] / 1e3, 100 * row["test_accuracy"]), fontsize=6,
                    textcoords="offset points", xytext=(3, -8), color="C1", annotation_clip=True)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 300, not 3×10²
    ax.xaxis.set_major_formatter(plain)
    if minor_labels:
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("energy per image (nJ)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
