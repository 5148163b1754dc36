"""The Pareto figure of a search: every evaluated arch, the front and the static backbones, over two objectives.

Drawn from plain tables, so a search writes it and ``eenas report`` redraws it from a run directory's CSV files.
matplotlib is imported when a figure is drawn, not with this module: the search imports :class:`Axis` at start-up.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Axis:
    """One axis of :func:`plot_pareto`: a column of the tables and the key of the static backbones' value."""

    column: str
    static: str
    label: str
    fraction: bool = False  # a share, shown in %; else a cost, shown over the reference static backbone's (log)


ACCELERATOR_LEGEND = 0.18  # share of a co-search figure's width its accelerators' legend takes, at the right
ACCURACY_AXIS = Axis("accuracy", "accuracy", "validation accuracy", fraction=True)
ET_AXIS = Axis("average_et", "static_et", "average ET")


def projections(objectives: Sequence[str]) -> list[tuple[str, str, str]]:
    """Each pair ``(a, b)`` of a run's objectives, in their order, with the file its projection is drawn in:
    the search writes these figures for other than the default objectives, and ``eenas report`` shows them."""
    return [(a, b, f"pareto_{a}_{b}.png") for i, a in enumerate(objectives) for b in objectives[i + 1:]]


def plot_pareto(archive: pd.DataFrame, front: pd.DataFrame, statics: list[dict], title: str, path: Path,
                x: Axis = ET_AXIS, y: Axis = ACCURACY_AXIS, staircase: bool = True) -> None:
    """Validation accuracy against average ET (or any two objectives, ``x`` and ``y``): every evaluated arch, the
    front, the static backbones.

    A cost is normalised by one reference, the static backbone at the highest precision (the first such, the
    co-search's first accelerator's), so archs of different precisions share one axis and the front is monotonic.
    Takes plain tables (``statics``: dicts with ``bits`` and each axis's ``static`` key) so ``eenas report``
    redraws it from a run directory's CSV files.  ``staircase`` joins the front (a two-objective front; a
    projection of more is not monotonic).  A co-search's front (a ``hardware`` column) is coloured by accelerator,
    with the static backbones of the accelerators on it; else by its number of early exits.
    """
    from eenas.report.figures import DPI, plt, save

    reference = max(statics, key=lambda s: s["bits"])

    def scaled(axis: Axis, values):
        return 100 * values if axis.fraction else values / reference[axis.static]

    legend_width = ACCELERATOR_LEGEND if "hardware" in front and not front.empty else 0.0
    fig, ax = plt.subplots(figsize=(7.5 / (1 - legend_width), 4.8), dpi=DPI)
    if not archive.empty:
        ax.scatter(scaled(x, archive[x.column]), scaled(y, archive[y.column]), s=12, c="0.8", label="evaluated")
    colour = _front_colours(fig, ax, front)
    if not front.empty:
        for bits, marker in zip(sorted(front["backbone_bits"].unique(), reverse=True), "os^D"):
            part, label = front[front["backbone_bits"] == bits], f"front, {bits}-bit backbone"
            if legend_width:  # colours are accelerators: the marker's legend entry gets none
                ax.scatter([], [], marker=marker, s=44, c="white", edgecolors="k", label=label)
            ax.scatter(scaled(x, part[x.column]), scaled(y, part[y.column]), marker=marker, s=44, edgecolors="k",
                       zorder=3, label=None if legend_width else label, **colour(part))
        if staircase:
            ax.step(scaled(x, front[x.column]), scaled(y, front[y.column]), where="post", c="k", lw=0.8, zorder=2)
    shown = set(front["hardware"]) if "hardware" in front else None
    for static in statics:
        px, py = scaled(x, static[x.static]), scaled(y, static[y.static])
        if shown is None:
            ax.scatter([px], [py], marker="*", s=180, c="tab:red", zorder=4)
            ax.annotate(f"static {static['bits']}-bit", (px, py), textcoords="offset points",
                        xytext=(-8, 6), ha="right", fontsize=8)
        elif static["hardware"] in shown:  # a co-search's: too many to label, coloured by accelerator
            ax.scatter([px], [py], marker="*", s=180, edgecolors="k", zorder=4,
                       **colour(pd.DataFrame({"hardware": [static["hardware"]]})))
    on = f" on {reference['hardware']}" if "hardware" in reference else ""
    for axis, set_label, set_scale in ((x, ax.set_xlabel, ax.set_xscale), (y, ax.set_ylabel, ax.set_yscale)):
        if axis.fraction:
            set_label(f"{axis.label} (%)")
        else:
            set_scale("log")
            set_label(f"{axis.label} / static {reference['bits']}-bit backbone's{on} (log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:  # a run whose candidates all failed has nothing to label
        ax.legend(loc="lower right", fontsize=8)
    save(fig, path, rect=(0, 0, 1 - legend_width, 1))


def _front_colours(fig, ax, front: pd.DataFrame) -> Callable[[pd.DataFrame], dict]:
    """Scatter colours of front rows: by accelerator in a co-search (a legend of them beside the plot), else by
    number of early exits (a colour bar)."""
    from matplotlib.colors import BoundaryNorm
    from matplotlib.lines import Line2D

    from eenas.report.figures import plt

    if front.empty:
        return lambda part: {}
    if "hardware" in front:
        names = list(dict.fromkeys(front["hardware"]))  # cheapest first
        palette = dict(zip(names, itertools.cycle(plt.get_cmap("tab10").colors)))
        handles = [Line2D([], [], ls="", marker="o", mec="k", mfc=palette[n], label=n) for n in names]
        fig.legend(handles=handles, title="accelerator\n(star: its static\nbackbones)", fontsize=7,
                   title_fontsize=7, loc="upper left", bbox_to_anchor=(1 - ACCELERATOR_LEGEND, 0.93))
        return lambda part: {"c": [palette[n] for n in part["hardware"]]}
    # pruned to their live networks, front members may keep no early exit at all
    fewest, most = int(front["n_exits"].min()), int(front["n_exits"].max())
    norm = BoundaryNorm([n - 0.5 for n in range(fewest, most + 2)], plt.get_cmap("viridis").N)
    fig.colorbar(plt.cm.ScalarMappable(norm, "viridis"), ax=ax, label="early exits", ticks=range(fewest, most + 1))
    return lambda part: {"c": part["n_exits"], "cmap": "viridis", "norm": norm}
