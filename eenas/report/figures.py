"""Plotting helpers every study and report shares, so all figures look and read alike.

Figures use the Agg backend (no display needed) and are written atomically as PNG, so a
killed command never leaves a half-written image behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from eenas.io import atomic_write  # noqa: E402

ET_UNIT = "pJ·cycles"
DPI = 120
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def panels(count: int, width: float = 5.5, height: float = 4.2, rows: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure of ``count`` panels in ``rows`` rows, each about ``width`` x ``height`` inches."""
    cols = -(-count // rows)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), dpi=DPI, squeeze=False)
    flat = list(axes.flat)
    for extra in flat[count:]:
        extra.remove()
    return fig, flat[:count]


def two_over_one(width: float = 13.0, height: float = 9.0) -> tuple[Figure, list[Axes]]:
    """Two panels side by side above one full-width panel (for a panel with many x ticks)."""
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    grid = fig.add_gridspec(2, 2)
    return fig, [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]


def style(ax: Axes, title: str, xlabel: str, ylabel: str, log_y: bool = False) -> None:
    """Title, labelled axes (with units) and a light grid."""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both" if log_y else "major")


def label_bars(ax: Axes, bars, texts: Sequence[str], fontsize: int = 7) -> None:
    """Write ``texts`` just above ``bars`` (works on linear and log axes)."""
    for bar, text in zip(bars, texts):
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), textcoords="offset points",
                    xytext=(0, 2), ha="center", va="bottom", fontsize=fontsize)


def save(fig: Figure, path: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    """Lay out (within ``rect``, a share of the figure: room left for a legend beside it), write atomically as PNG
    and free the figure."""
    fig.tight_layout(rect=rect)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    plt.close(fig)
    return path
