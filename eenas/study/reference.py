"""The reference work's released early-exit networks as data, and an eenas front drawn against them.

Zniber et al. (arXiv:2512.04705) published the networks their NAS found in the fork
``asyms/stream`` (branch expl-eenn).  Their numbers ship as ``data/zniber2025_released.csv``
(provenance and columns in ``data/README.md``), so a search is compared with them offline.

Both works divide a network's average ET by the ET of its own static path (backbone and
final head), but the reference released two final heads: one FC layer, and a 13.1M-parameter
two-layer head whose static ET is about 10-18x larger.  A large head inflates the denominator, so
ratios are compared within a head kind, and the table and figure keep the two apart.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import pandas as pd
from matplotlib.ticker import FuncFormatter

from eenas.errors import EenasError
from eenas.report.figures import COLORS, panels, save, style
from eenas.report.tables import markdown, write_csv, write_markdown

REFERENCE_CSV = "zniber2025_released.csv"
SOURCE = "asyms/stream (branch expl-eenn), stream/inputs/eenn/workload/nas/"
LINEAR_HEAD_MAX_PARAMS = 100_000  # one FC layer has 51,210 params (5120 -> 10); the large head 13,135,370
HEAD_KINDS = {"linear": ("reference: linear final head", "o", "0.65"),  # kind -> (group, marker, grey)
              "large": ("reference: large final head", "s", "0.3")}
REFERENCE_COLUMNS = ["accuracy", "et_ratio", "n_exits", "label"]
NAME = "reference_comparison"


def load_reference() -> pd.DataFrame:
    """The released nets, one row each (columns in data/README.md)."""
    text = resources.files("eenas.study").joinpath("data", REFERENCE_CSV).read_text()
    return pd.read_csv(io.StringIO(text))


def search_front(front: pd.DataFrame, stats: Mapping[int, dict]) -> pd.DataFrame:
    """A search's ``pareto.csv`` on the test split (``stats``: k -> ``stats_<k>.json``), exits incl. the final one.

    The test split and a final classifier counted as an exit are how the reference reports its nets.
    """
    rows = [{"accuracy": stats[k]["accuracy"], "et_ratio": stats[k]["et_ratio"], "n_exits": len(stats[k]["exits"]),
             "label": f"{bits}-bit backbone"} for k, bits in zip(front["k"], front["backbone_bits"])]
    return pd.DataFrame(rows, columns=REFERENCE_COLUMNS)


def _check_front(front: pd.DataFrame) -> None:
    missing = [c for c in REFERENCE_COLUMNS if c not in front]
    if missing:
        raise EenasError(f"front: missing column(s) {', '.join(missing)}")
    if not front["accuracy"].between(0, 1).all():
        raise EenasError("front: accuracy must be a fraction in [0, 1], not a percentage")
    if not (front["et_ratio"] > 0).all():
        raise EenasError("front: et_ratio must be positive")


def _groups(reference: pd.DataFrame, front: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(group name, rows with accuracy, et_ratio and n_exits): each front label, then each head kind."""
    groups = [(f"eenas: {label}", part) for label, part in front.groupby("label", sort=False)]
    ref = reference.rename(columns={"top1_accuracy": "accuracy"})
    return groups + [(name, ref[ref["final_head_kind"] == kind]) for kind, (name, _, _) in HEAD_KINDS.items()]


def comparison_table(reference: pd.DataFrame, front: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per group: count and the range and median of accuracy (%) and ET ratio, and the exit range."""
    front = pd.DataFrame(columns=REFERENCE_COLUMNS) if front is None else front
    _check_front(front)
    rows = []
    for name, part in _groups(reference, front):
        acc, et = 100 * part["accuracy"].astype(float), part["et_ratio"].astype(float)
        rows.append({"group": name, "count": len(part),
                     "accuracy_pct_min": acc.min(), "accuracy_pct_median": acc.median(),
                     "accuracy_pct_max": acc.max(), "et_ratio_min": et.min(), "et_ratio_median": et.median(),
                     "et_ratio_max": et.max(), "exits_min": part["n_exits"].min(), "exits_max": part["n_exits"].max()})
    return pd.DataFrame(rows)


def _minor_label(value: float, _position) -> str:
    """Label the 2, 3 and 5 multiples of a log axis' decades (0.2, 0.3, 0.5), which stay legible."""
    return f"{value:g}" if round(value / 10 ** math.floor(math.log10(value))) in (2, 3, 5) else ""


def plot_comparison(reference: pd.DataFrame, front: pd.DataFrame, path: Path) -> Path:
    """Top-1 accuracy against ET ratio (log): the reference in greys by head kind, the front in colour by label."""
    fig, (ax,) = panels(1, width=7.5, height=4.8)
    for kind, (name, marker, grey) in HEAD_KINDS.items():
        part = reference[reference["final_head_kind"] == kind]
        ax.scatter(part["et_ratio"], 100 * part["top1_accuracy"], marker=marker, s=26, c=grey,
                   label=f"{name} ({len(part)})")
    for color, (label, part) in zip(COLORS, front.groupby("label", sort=False)):
        part = part.sort_values("et_ratio")
        ax.plot(part["et_ratio"], 100 * part["accuracy"], marker="o", ms=6, color=color, mec="k", zorder=3,
                label=f"eenas: {label} ({len(part)})")
    commit = reference["commit"].iloc[0][:7]
    style(ax, f"eenas front against the {len(reference)} networks released by Zniber et al. "
              f"(asyms/stream@{commit})", "ET ratio: average ET / ET of the same network's static path (log scale)",
          "top-1 accuracy, test split (%)")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.1 rather than 10^-1
    ax.xaxis.set_minor_formatter(FuncFormatter(_minor_label))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    return save(fig, path)


def compare_with_reference(front: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """``reference_comparison.csv``, ``.md`` and ``.png`` in ``out_dir``; returns the summary table.

    ``front``: columns ``accuracy`` (fraction, test split), ``et_ratio``, ``n_exits`` (incl. the
    final classifier) and ``label`` (one colour and one summary row per label).
    """
    reference = load_reference()
    table = comparison_table(reference, front)
    write_csv(out_dir, NAME, table)
    plot_comparison(reference, front, out_dir / f"{NAME}.png")
    commit = reference["commit"].iloc[0]
    note = (f"Reference: the {len(reference)} networks of {SOURCE} at commit `{commit}` (eenas/study/data/README.md). "
            "Both ET ratios divide a network's average ET by the ET of its own static path (backbone and final "
            "head), each under its own cost model and accelerator, so compare shapes rather than digits. The "
            "reference's large final head has 13.1M parameters and, on the same backbone, about 10-18x the static ET "
            "of the one-FC head; every reference net below ET ratio 0.405 carries it. Compare an eenas front (one FC "
            "final classifier) with the linear-head nets.")
    write_markdown(out_dir / f"{NAME}.md", "eenas front against the reference's released networks", [
        ("Summary", f"![comparison]({NAME}.png)\n\n" + markdown(table)), ("Reading it", note)])
    return table
