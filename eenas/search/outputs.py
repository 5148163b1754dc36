"""What a search writes into its run directory: tables, Pareto archs and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from eenas.arch import save_arch
from eenas.io import atomic_write, write_text

if TYPE_CHECKING:
    from eenas.search.holdout import Holdout
    from eenas.search.run import SearchRun, SearchState

FRONT_COLUMNS = ["k", "exits", "backbone_bits", "exit_bits", "accuracy", "test_accuracy", "accuracy_drop",
                 "et_ratio", "average_et", "average_latency", "average_energy"]


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_text(path, frame.to_csv(index=False))


def write_progress(out: Path, state: SearchState) -> None:
    """Rewritten after every iteration: the archive and the predictor's history."""
    write_csv(out / "archive.csv", pd.DataFrame(state.archive))
    write_csv(out / "predictor.csv", pd.DataFrame(state.history))


def write_holdout(out: Path, holdout: Holdout) -> None:
    """``holdout.csv`` (the predictor's held-out metrics) and ``holdout_points.csv`` (every held-out arch)."""
    write_csv(out / "holdout.csv", holdout.metrics)
    write_csv(out / "holdout_points.csv", holdout.points)


def write_results(run: SearchRun) -> pd.DataFrame:
    """``pareto.csv``, ``pareto/arch_<k>.json`` + ``stats_<k>.json`` and ``pareto.png``."""
    from eenas.evaluate import evaluate_arch, save_evaluation

    front = pd.DataFrame(run.pareto())
    if front.empty:
        front = pd.DataFrame(columns=FRONT_COLUMNS)
    front.insert(0, "k", range(len(front)))
    write_csv(run.out / "pareto.csv", front)
    for k, genome in zip(front["k"], front.get("genome", [])):
        # The evaluation's arch carries the training block 'eenas evaluate' reproduces these numbers from.
        arch = run.space.decode([int(v) for v in genome.split("-")])
        evaluation = evaluate_arch(arch, run.pipeline, weights=run.cfg.weights)
        save_arch(evaluation.arch, run.out / "pareto" / f"arch_{k}.json")
        save_evaluation(evaluation, run.out / "pareto" / f"stats_{k}.json", written_by="eenas search")
    plot_front(run, front, run.out / "pareto.png")
    return front[FRONT_COLUMNS]


def plot_front(run: SearchRun, front: pd.DataFrame, path: Path) -> None:
    archive = pd.DataFrame([r for r in run.state.archive if r["status"] == "ok"])
    plot_pareto(archive, front, run.static_points(), f"eenas search: {run.cfg.dataset}, {run.cfg.hardware}", path)


def plot_pareto(archive: pd.DataFrame, front: pd.DataFrame, statics: list[dict], title: str, path: Path) -> None:
    """Validation accuracy against average ET: every evaluated arch, the front, the static backbones.

    ET is normalised by one reference, the static backbone at the highest precision, so archs
    of different precisions share one axis and the front is monotonic.  Takes plain tables
    (``statics``: dicts with ``bits``, ``accuracy`` and ``static_et``) so ``eenas report``
    redraws it from a run directory's CSV files.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm

    reference = max(statics, key=lambda s: s["bits"])
    ref_et = reference["static_et"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    if not archive.empty:
        ax.scatter(archive["average_et"] / ref_et, 100 * archive["accuracy"], s=12, c="0.8", label="evaluated")
    if not front.empty:
        most = int(front["n_exits"].max())
        norm = BoundaryNorm([n - 0.5 for n in range(1, most + 2)], plt.get_cmap("viridis").N)
        for bits, marker in zip(sorted(front["backbone_bits"].unique(), reverse=True), "os^D"):
            part = front[front["backbone_bits"] == bits]
            points = ax.scatter(part["average_et"] / ref_et, 100 * part["accuracy"], c=part["n_exits"],
                                cmap="viridis", norm=norm, marker=marker, s=44, edgecolors="k", zorder=3,
                                label=f"front, {bits}-bit backbone")
        fig.colorbar(points, ax=ax, label="early exits", ticks=range(1, most + 1))
        ax.step(front["average_et"] / ref_et, 100 * front["accuracy"], where="post", c="k", lw=0.8, zorder=2)
    for static in statics:
        x = static["static_et"] / ref_et
        ax.scatter([x], [100 * static["accuracy"]], marker="*", s=180, c="tab:red", zorder=4)
        ax.annotate(f"static {static['bits']}-bit", (x, 100 * static["accuracy"]), textcoords="offset points",
                    xytext=(-8, 6), ha="right", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"average ET / static {reference['bits']}-bit backbone ET (log scale)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    plt.close(fig)
