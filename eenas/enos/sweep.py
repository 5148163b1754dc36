"""The accuracy-against-energy curve: ENOS at several energy weights against single-operator networks.

For each energy weight, one search (fine-tuned and tested); for each candidate of the energy
table, one network with every layer on that candidate, trained for the same total epochs.
Each run is cached under ``--cache-dir``, so an interrupted sweep resumes where it stopped.
``sweep.csv`` / ``sweep.md`` list every point; ``sweep.md`` also compares each ENOS point
with the most accurate single-operator network that needs no more energy.  ``sweep.png``
plots them all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import pandas as pd

from eenas.enos.search import (
    EnosConfig,
    RunResult,
    Workspace,
    cached,
    check_energy_weight,
    run_search,
    train_single_operator,
    write_run,
)
from eenas.errors import EenasError
from eenas.io import atomic_write, write_text
from eenas.train.cache import Cache
from eenas.train.loops import TrainingDiverged

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    searched: tuple[tuple[float, RunResult], ...]  # (energy weight, result)
    singles: tuple[RunResult, ...]

    def points(self) -> pd.DataFrame:
        rows = [{"network": r.label, "kind": "enos", "energy_weight": w, "energy_pj": r.energy_pj,
                 "test_accuracy": r.test_accuracy} for w, r in self.searched]
        rows += [{"network": r.label, "kind": "single", "energy_weight": None, "energy_pj": r.energy_pj,
                  "test_accuracy": r.test_accuracy} for r in self.singles]
        return pd.DataFrame(rows)

    def comparison(self) -> pd.DataFrame:
        """Each ENOS point against the best single-operator network at no more energy."""
        rows = []
        for w, r in self.searched:
            affordable = [s for s in self.singles if s.energy_pj <= r.energy_pj]
            best = max(affordable, key=lambda s: s.test_accuracy, default=None)
            rows.append({
                "energy_weight": w, "enos_energy_pj": r.energy_pj, "enos_accuracy": r.test_accuracy,
                "best_single_at_or_below": best.label if best else "none",
                "single_energy_pj": best.energy_pj if best else None,
                "single_accuracy": best.test_accuracy if best else None,
                "accuracy_gain_points": 100 * (r.test_accuracy - best.test_accuracy) if best else None,
            })
        return pd.DataFrame(rows)


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


def run_sweep(cfg: EnosConfig, energy_weights: tuple[float, ...], out: Path, cache_dir: str | None) -> SweepResult:
    """Searches at each energy weight, then every single-operator baseline; writes each run's outputs."""
    ws = Workspace(cfg)
    cache = Cache(cache_dir)
    searched = []
    for w in energy_weights:
        result = _attempt(f"enos λ={w:g}", lambda w=w: cached(
            "search", ws, cache, partial(run_search, replace(cfg, energy_weight=w), ws),
            scheme=cfg.scheme, energy_weight=w, relaxation=cfg.relaxation_used))
        write_run(result, out / f"lambda_{w:g}")
        searched.append((w, result))
    singles = []
    for index, label in enumerate(ws.table.labels):
        result = _attempt(label, lambda index=index, label=label: cached(
            "single", ws, cache, partial(train_single_operator, cfg, index, ws), candidate=label))
        write_run(result, out / "single" / label.replace("/", "_"))
        singles.append(result)
    sweep = SweepResult(tuple(searched), tuple(singles))
    write_sweep(sweep, cfg, out)
    return sweep


def _attempt(label: str, run: Callable[[], RunResult]) -> RunResult:
    """A run, or a NaN-accuracy placeholder (not cached) if its training diverged."""
    try:
        return run()
    except TrainingDiverged as exc:
        log.warning("%s diverged (%s); recorded with NaN accuracy", label, exc)
        return RunResult(label, math.nan, math.nan, (), 0.0, {"diverged": str(exc)})


def write_sweep(sweep: SweepResult, cfg: EnosConfig, out: Path) -> None:
    points, comparison = sweep.points(), sweep.comparison()
    write_text(out / "sweep.csv", points.to_csv(index=False))
    write_text(out / "comparison.csv", comparison.to_csv(index=False))
    write_text(out / "sweep.md", (
        f"# ENOS sweep: {cfg.model} on {cfg.dataset}, scheme {cfg.scheme}, budget {cfg.budget}\n\n"
        + points.to_markdown(index=False, floatfmt=".4g")
        + "\n\n## Against the best single-operator network at equal or lower energy\n\n"
        + comparison.to_markdown(index=False, floatfmt=".4g") + "\n"
    ))
    atomic_write(out / "sweep.png", lambda fh: _figure(sweep, cfg, fh))
    log.info("sweep tables and figure in %s", out)


def _figure(sweep: SweepResult, cfg: EnosConfig, fh) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    searched = sorted(sweep.searched, key=lambda p: p[1].energy_pj)
    ax.plot([r.energy_pj / 1e3 for _, r in searched], [100 * r.test_accuracy for _, r in searched],
            "o-", color="C0", label=f"ENOS ({cfg.scheme})")
    for w, r in searched:
        ax.annotate(f"λ={w:g}", (r.energy_pj / 1e3, 100 * r.test_accuracy), textcoords="offset points",
                    xytext=(4, 4), fontsize=8, color="C0")
    for i, r in enumerate(sweep.singles):
        ax.scatter(r.energy_pj / 1e3, 100 * r.test_accuracy, marker="s", color=f"C{(i % 9) + 1}", label=r.label)
    ax.set_xscale("log")
    ax.set_xlabel("energy per image (nJ)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{cfg.model} on {cfg.dataset}: searched mix against single-operator networks")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(fh, format="png", dpi=150)
    plt.close(fig)
