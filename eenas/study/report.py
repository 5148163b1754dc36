"""``eenas report``: every figure of a finished search run, redrawn from its files, ``report.md`` and ``report.html``.

The report reads only what the run directory holds (``config.json``, ``archive.csv``,
``pareto.csv``, ``predictor.csv``, ``pareto/stats_<k>.json``, ``holdout.csv`` where the run
measured its predictor on held-out archs), so it needs no training,
no cache and no model, and it can be rerun after any change to the plots.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eenas.arch import BackboneConfig
from eenas.errors import EenasError
from eenas.models.registry import DEFAULT_BACKBONE
from eenas.report.figures import COLORS, ET_UNIT, label_bars, panels, save, style
from eenas.report.page import Block, Figure, write_page
from eenas.report.pareto import plot_pareto, projections
from eenas.report.tables import write_csv
from eenas.search.holdout import summary_line
from eenas.search.objectives import DEFAULT_OBJECTIVES
from eenas.study.precision import backbone_text
from eenas.study.reference import compare_with_reference, search_front
from eenas.train.budget import get_budget

log = logging.getLogger(__name__)

REPORT_FRONT_COLUMNS = ["k", "exits", "hardware", "n_exits", "backbone_bits", "exit_bits", "accuracy", "test_accuracy",
                 "accuracy_drop", "exit_ratios", "average_et", "et_ratio"]
PREDICTOR_COLUMNS = ["iteration", "predictor", "cv_tau", "tau_new", "rmse_new", "et_tau_new"]
PROGRESS_COLUMNS = ["iteration", "true_evaluations", "front_size", "hypervolume", "best_et_ratio", "wall_s"]


@dataclass(frozen=True)
class SearchResults:
    """What a search run directory holds (archive: successfully evaluated records only)."""

    run_dir: Path
    config: dict
    archive: pd.DataFrame
    front: pd.DataFrame
    history: pd.DataFrame
    stats: dict[int, dict]  # Pareto index k -> pareto/stats_<k>.json (test split)
    holdout: pd.DataFrame | None  # holdout.csv: the predictor's metrics on held-out archs (None: not measured)

    def statics(self) -> list[dict]:
        """The static backbone per backbone bit-width, and in a co-search per accelerator (named under ``hardware``):
        validation accuracy and ET (from the archive)."""
        if self.archive.empty:
            return []
        keys = [key for key in ("hardware", "backbone_bits") if key in self.archive]
        rows = []
        for values, g in self.archive.groupby(keys, sort=True):
            *hardware, bits = values
            rows.append({**({"hardware": hardware[0]} if hardware else {}), "bits": int(bits),
                         "accuracy": float(g["static_accuracy"].iloc[0]), "static_et": float(g["static_et"].iloc[0])})
        return rows

    @property
    def title(self) -> str:
        c = self.config
        hardware = c["hardware"] if "hardware" in c else f"co-search over {c['hardware_space']}"
        return f"{c['dataset']}, {hardware}, budget {c['budget']}"


def _read(path: Path) -> Path:
    if not path.exists():
        raise EenasError(f"{path.parent}: no {path.name} (is it the directory of a finished 'eenas search'?)")
    return path


def load_results(run_dir: Path) -> SearchResults:
    config = json.loads(_read(run_dir / "config.json").read_text())["search"]
    archive = pd.read_csv(_read(run_dir / "archive.csv"))
    front = pd.read_csv(_read(run_dir / "pareto.csv"))
    history = pd.read_csv(_read(run_dir / "predictor.csv"))
    stats = {int(k): json.loads(_read(run_dir / "pareto" / f"stats_{k}.json").read_text()) for k in front["k"]}
    holdout = pd.read_csv(run_dir / "holdout.csv") if (run_dir / "holdout.csv").exists() else None
    return SearchResults(run_dir, config, archive[archive["status"] == "ok"], front, history, stats, holdout)


def highlights(front: pd.DataFrame) -> list[tuple[str, int]]:
    """(label, k) of the lowest-ET point, the knee and the most accurate point.

    The knee is the front point that lies farthest above the straight line joining the two
    extremes (towards more accuracy for less ET), with accuracy and log average ET each
    scaled to [0, 1] over the front; where the front bulges the other way, it is the point
    closest to that line.  A point that is several of these gets one entry, labels joined.
    """
    if front.empty:
        return []
    et, acc = np.log(front["average_et"].to_numpy()), front["accuracy"].to_numpy()
    lo, hi = int(np.argmin(et)), int(np.argmax(acc))
    picks: dict[int, list[str]] = {lo: ["lowest ET"]}
    picks.setdefault(hi, []).append("highest accuracy")
    if len(front) > 2:
        x = (et - et.min()) / (np.ptp(et) or 1.0)
        y = (acc - acc.min()) / (np.ptp(acc) or 1.0)
        d = np.array([x[hi] - x[lo], y[hi] - y[lo]])
        above = d[0] * (y - y[lo]) - d[1] * (x - x[lo])  # signed: > 0 above the line
        above[[lo, hi]] = -np.inf
        picks.setdefault(int(np.argmax(above)), []).append("knee")
    order = sorted(picks, key=lambda i: et[i])
    return [(" & ".join(picks[i]), int(front["k"].iloc[i])) for i in order]


def points_table(results: SearchResults, points: list[tuple[str, int]]) -> pd.DataFrame:
    """Per exit of each highlighted arch: ratio, accuracy and cumulative costs (test split)."""
    rows = []
    for label, k in points:
        for i, e in enumerate(results.stats[k]["exits"], start=1):
            rows.append({"point": label, "k": k, "exit": i, **e})
    return pd.DataFrame(rows)


def plot_stages(results: SearchResults, points: list[tuple[str, int]], path: Path) -> Path:
    """One panel per highlighted arch: cumulative ET at each exit, labelled with its exit ratio."""
    fig, axes = panels(len(points), width=5.0, height=4.2)
    for ax, color, (label, k) in zip(axes, COLORS, points):
        s = results.stats[k]
        exits = s["exits"]
        x = np.arange(len(exits))
        bars = ax.bar(x, [e["cum_et"] for e in exits], color=color, width=0.6)
        label_bars(ax, bars, [f"{100 * e['exit_ratio']:.0f}%" for e in exits], fontsize=8)
        ax.axhline(s["static_et"], color="k", ls="--", lw=1, label="static backbone ET")
        ax.axhline(s["average_et"], color="tab:red", ls=":", lw=1.5, label="average ET")
        ax.set_xticks(x, [f"b{e['after_block']}" if e["after_block"] != "final" else "final" for e in exits])
        style(ax, f"{label} (k={k})\nET ratio {s['et_ratio']:.3g}, test accuracy {100 * s['accuracy']:.1f}%",
              "exit (mount block); label: share of test samples leaving", f"cumulative energy × latency ({ET_UNIT})")
        ax.set_ylim(top=ax.get_ylim()[1] * 1.08)
        ax.legend(fontsize=7, loc="upper left")
    return save(fig, path)


def plot_predictor(history: pd.DataFrame, path: Path) -> Path:
    """Kendall τ of the accuracy and ET predictions (left) and accuracy RMSE (right) per iteration."""
    fig, (ax,) = panels(1, width=7.0, height=4.2)
    for column, label in (("cv_tau", "cross-validated τ (accuracy)"), ("tau_new", "τ on new evaluations (accuracy)"),
                          ("et_tau_new", "τ on new evaluations (average ET)")):
        ax.plot(history["iteration"], history[column], marker="o", label=label)
    style(ax, "Predictor quality per iteration (iteration 0 is the initial sample)", "iteration", "Kendall τ")
    ax.set_ylim(-1.05, 1.05)
    rmse = ax.twinx()
    rmse.plot(history["iteration"], 100 * history["rmse_new"], color="0.3", ls="--", marker="s",
              label="accuracy RMSE on new evaluations")
    rmse.set_ylabel("accuracy RMSE (points)")
    rmse.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = rmse.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="best")
    ax.set_xticks(history["iteration"])
    return save(fig, path)


def plot_hypervolume(history: pd.DataFrame, path: Path) -> Path:
    """Hypervolume (left) and the best ET ratio on the front (right) per iteration."""
    fig, (ax,) = panels(1, width=7.0, height=4.2)
    ax.plot(history["iteration"], history["hypervolume"], marker="o", color=COLORS[0], label="hypervolume")
    for it, hv, n in zip(history["iteration"], history["hypervolume"], history["true_evaluations"]):
        ax.annotate(f"{n} evals", (it, hv), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    style(ax, "Hypervolume per iteration\n(error rate × ET / static ET at the top precision, reference (1, 1.5))",
          "iteration", "hypervolume (higher is better)")
    best = ax.twinx()
    best.plot(history["iteration"], history["best_et_ratio"], marker="s", ls="--", color=COLORS[1],
              label="best ET ratio on the front")
    best.set_ylabel("best ET ratio (average ET / static ET)")
    ax.margins(y=0.15)
    best.margins(y=0.15)
    lines, more = ax.get_legend_handles_labels(), best.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="best")
    ax.set_xticks(history["iteration"])
    return save(fig, path)


def _holdout_section(holdout: pd.DataFrame | None) -> list[Block]:
    if holdout is None:
        return ["Not measured (the run's --holdout was 0, or it predates held-out measurement)."]
    return [f"The {summary_line(holdout)}. The archs were drawn at random after the search, outside its archive, "
            "and predicted by a predictor fitted on the final archive (holdout_points.csv has each one).", holdout]


def write_report(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Every figure of the run, ``report.md`` (with its tables) and the self-contained ``report.html`` in ``out``
    (default: the run directory)."""
    results = load_results(run_dir)
    out = out or run_dir
    c, front, history = results.config, results.front, results.history
    points = highlights(front)
    statics = pd.DataFrame(results.statics())
    paths = [write_csv(out, "report_static", statics)]
    objectives = list(c.get("objectives", DEFAULT_OBJECTIVES))  # runs on the default objectives do not record them
    if objectives == list(DEFAULT_OBJECTIVES):
        plot_pareto(results.archive, front, results.statics(), f"eenas search: {results.title}", out / "pareto.png")
        paths.append(out / "pareto.png")
        figures = [Figure(out / "pareto.png", "Pareto front")]
    else:  # the search drew one projection per pair of objectives, with their static values (not in the archive)
        pairs = projections(objectives)
        if out.resolve() != run_dir.resolve():
            for _, _, name in pairs:
                shutil.copyfile(run_dir / name, out / name)
        figures = [Figure(out / name, f"Pareto front, {a} against {b}") for a, b, name in pairs]
    log.info("front of %d archs; highlighted %s", len(front), ", ".join(f"{lb} (k={k})" for lb, k in points))
    stage_section: list[Block]
    if points:
        table = points_table(results, points)
        paths += [write_csv(out, "report_points", table), plot_stages(results, points, out / "stages.png")]
        stage_section = [Figure(out / "stages.png", "per-stage ET"),
                         f"Bars: cumulative ET of a sample leaving at each exit ({ET_UNIT}); labels: share of test "
                         "samples leaving there.", table]
    else:
        stage_section = ["The front is empty: no evaluated arch met the constraints."]
    paths += [plot_predictor(history, out / "predictor.png"), plot_hypervolume(history, out / "hypervolume.png")]
    reference_section: list[Block]
    if len(front):
        reference = compare_with_reference(search_front(front, results.stats), out)
        paths += [out / f"reference_comparison.{ext}" for ext in ("csv", "md", "png")]
        reference_section = [Figure(out / "reference_comparison.png", "front against the reference"), reference,
                             "Test split; exits counted with the final classifier, as the reference does "
                             "(details: [reference_comparison.md](reference_comparison.md))."]
    else:
        reference_section = ["The front is empty."]
    family = c.get("backbone", DEFAULT_BACKBONE)  # runs on MobileNetV2 do not record it
    backbone = BackboneConfig(family, c["width_mult"] or get_budget(c["budget"]).width_mult)
    settings = (f"Run `{run_dir}`: {results.title}; {backbone_text(backbone)}, bits "
                f"{c['bits']}, at most {c['max_exits']} exits, at most {c['max_accuracy_drop']} points below the "
                f"static backbone; objectives {', '.join(objectives)}; {len(results.archive)} archs evaluated, "
                f"{len(front)} on the front. Accuracy on "
                "the front is on the validation split (what the search optimised); per-exit tables are on the "
                "test split.")
    paths += write_page(out, "report", f"Search report: {run_dir.name}", [
        ("Settings", [settings]),
        ("Pareto front against the static backbone",
         [*figures, front[[col for col in dict.fromkeys([*REPORT_FRONT_COLUMNS, *objectives]) if col in front]],
          "Static backbones (ET ratio 1 by definition):", statics]),
        ("Per-stage ET of the front's extreme points and knee", stage_section),
        ("Against the reference's released networks", reference_section),
        ("Predictor quality per iteration",
         [Figure(out / "predictor.png", "predictor quality"),
          history[PREDICTOR_COLUMNS].fillna({"predictor": "(initial sample)"})]),
        ("Predictor quality on held-out archs", _holdout_section(results.holdout)),
        ("Hypervolume per iteration", [Figure(out / "hypervolume.png", "hypervolume"), history[PROGRESS_COLUMNS]]),
    ])
    return paths
