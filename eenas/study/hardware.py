"""The hardware study: a set of archs on a set of accelerators, and which accelerator suits them best.

Pure cost modelling (nothing is trained): each arch is costed on each accelerator, and its
average ET uses the exit ratios recorded beside it (a search's ``stats_<k>.json`` or ``eenas
evaluate``'s ``<arch>.eval.json``: validation ratios when the file has them, else the test
split's), or, without such a file, every sample reaching the final exit.  Accelerators are
ranked by the geometric mean of the archs' average ET, so that each arch weighs the same
whatever its size; an accelerator *wins* an arch when no other gives it a lower average ET.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from eenas.arch import Arch, load_arch
from eenas.errors import EenasError
from eenas.hardware import ArchCost, check_exit_ratios, cost_arch, load_accelerator
from eenas.hardware.accelerator import CASE_STUDY_PRESETS
from eenas.hardware.allocation import DEFAULT_ALLOCATION
from eenas.io import join, read_json
from eenas.report.figures import ET_UNIT, label_bars, panels, save, style
from eenas.report.tables import markdown, write_csv, write_markdown

log = logging.getLogger(__name__)

DEFAULT_ACCELERATORS = CASE_STUDY_PRESETS
TIE = 1e-9  # relative difference under which two average ETs are equal (ranks and wins)


@dataclass(frozen=True)
class StudyArch:
    """One arch of the study and the exit ratios its average ET uses."""

    label: str
    arch: Arch
    ratios: tuple[float, ...]  # one per exit, the final classifier last
    source: str  # where the ratios come from: "validation", "test" or "static" (every sample to the end)


def _natural(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def _stats_file(arch_path: Path) -> Path | None:
    """A search's ``stats_<k>.json`` beside ``arch_<k>.json``, else ``eenas evaluate``'s ``<arch>.eval.json``."""
    candidates = [arch_path.with_name(f"{arch_path.stem}.eval.json")]
    if arch_path.stem.startswith("arch_"):
        candidates.insert(0, arch_path.with_name(f"stats_{arch_path.stem.removeprefix('arch_')}.json"))
    return next((p for p in candidates if p.is_file()), None)


def _ratios(arch: Arch, stats: Path | None) -> tuple[tuple[float, ...], str]:
    """The recorded validation exit ratios, else the test split's, else every sample at the final exit."""
    count = arch.n_outputs
    if stats is None:
        return (0.0,) * (count - 1) + (1.0,), "static"
    data = read_json(stats, "stats file")
    if isinstance(data, dict) and data.get("val_exit_ratios") is not None:
        field, values, source = "val_exit_ratios", data["val_exit_ratios"], "validation"
    else:
        exits = data.get("exits") if isinstance(data, dict) else None
        if not isinstance(exits, list) or not all(isinstance(e, dict) and "exit_ratio" in e for e in exits):
            raise EenasError(f"{stats}: exits: expected a list of exits with an 'exit_ratio' each")
        field, values, source = "exits[].exit_ratio", [e["exit_ratio"] for e in exits], "test"
    try:
        return check_exit_ratios(values, count), source
    except (EenasError, TypeError, ValueError) as exc:
        raise EenasError(f"{stats}: {field}: {exc}") from None


def load_study_archs(paths: Sequence[str | Path]) -> tuple[StudyArch, ...]:
    """Arch files, and folders whose ``arch_*.json`` are taken in natural order (a run's ``pareto/``)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("arch_*.json"), key=_natural)
            if not found:
                raise EenasError(f"{path}: no arch_*.json in this folder")
            files += found
        else:
            files.append(path)
    if not files:
        raise EenasError("hardware study: give at least one arch file or folder")
    labels = [f.stem for f in files]
    if len(set(labels)) < len(labels):  # archs of several folders: tell them apart by their folder
        labels = [f"{f.parent.name}/{f.stem}" for f in files]
    archs = []
    for label, file in zip(labels, files):
        arch = load_arch(file)
        archs.append(StudyArch(label, arch, *_ratios(arch, _stats_file(file))))
    return tuple(archs)


@dataclass(frozen=True)
class HardwareStudy:
    """``costs[i][j]``: arch ``i`` on accelerator ``j``."""

    archs: tuple[StudyArch, ...]
    hardware: tuple[str, ...]  # accelerator names, as reported
    cores: tuple[str, ...]  # each accelerator's compute cores, e.g. "edge_tpu_like x2, meta_like, eyeriss_like"
    costs: tuple[tuple[ArchCost, ...], ...]
    weights: str | None
    allocation: str

    def pairs(self) -> pd.DataFrame:
        """One row per (arch, accelerator): average and static costs, and how it compares for this arch."""
        rows = []
        for a, costs in zip(self.archs, self.costs):
            ets = [c.average_et(a.ratios) for c in costs]
            best = min(ets)
            for name, c, et in zip(self.hardware, costs, ets):
                rows.append({
                    "arch": a.label, "hardware": name, "ratios_from": a.source, "exit_ratios": join(a.ratios),
                    "average_cycles": c.average_latency(a.ratios), "average_energy_pj": c.average_energy(a.ratios),
                    "average_et": et, "static_et": c.static_et, "et_ratio": c.et_ratio(a.ratios),
                    "relative_et": et / best, "best": et <= best * (1 + TIE),
                })
        return pd.DataFrame(rows)

    def exits(self) -> pd.DataFrame:
        """One row per (arch, accelerator, exit): the cumulative costs a sample leaving there pays."""
        rows = []
        for a, costs in zip(self.archs, self.costs):
            for name, c in zip(self.hardware, costs):
                for i, (e, r) in enumerate(zip(c.exits, a.ratios), start=1):
                    rows.append({
                        "arch": a.label, "hardware": name, "exit": i,
                        "after_block": "final" if e.after_block is None else e.after_block, "head": e.head,
                        "exit_ratio": r, "cum_cycles": e.cum_latency_cycles, "cum_energy_pj": e.cum_energy_pj,
                        "cum_et": e.cum_et,
                    })
        return pd.DataFrame(rows)

    def ranking(self) -> pd.DataFrame:
        """Accelerators from the best: geometric-mean average ET over the archs, archs won, mean relative ET."""
        pairs = self.pairs()
        grouped = pairs.groupby("hardware", sort=False)
        table = pd.DataFrame({
            "hardware": list(self.hardware),
            "cores": list(self.cores),
            "geomean_average_et": [float(np.exp(np.log(grouped.get_group(h)["average_et"]).mean()))
                                   for h in self.hardware],
            "mean_relative_et": [float(grouped.get_group(h)["relative_et"].mean()) for h in self.hardware],
            "mean_et_ratio": [float(grouped.get_group(h)["et_ratio"].mean()) for h in self.hardware],
            "wins": [int(grouped.get_group(h)["best"].sum()) for h in self.hardware],
        })
        # Equal within TIE ranks equal: round the log to the tie's precision before ranking.
        key = np.round(np.log(table["geomean_average_et"]) / TIE) * TIE
        table.insert(0, "rank", key.rank(method="min").astype(int))
        return table.sort_values(["rank", "hardware"], kind="stable").reset_index(drop=True)


def _cores_text(name: str) -> str:
    """The compute cores' styles, counted: a Stream file's cores are named style + index (``meta_like2``)."""
    styles: dict[str, int] = {}
    for core in load_accelerator(name).cores:
        style_name = core.name.rstrip("0123456789") or core.name
        styles[style_name] = styles.get(style_name, 0) + 1
    return ", ".join(f"{s} x{n}" if n > 1 else s for s, n in styles.items())


def run_hardware_study(
    archs: Sequence[StudyArch], hardware: Sequence[str] = DEFAULT_ACCELERATORS, weights: str | None = None,
    allocation: str = DEFAULT_ALLOCATION,
) -> HardwareStudy:
    """Cost every arch on every accelerator (``weights``: override every arch's weight mode)."""
    accelerators = [load_accelerator(h) for h in hardware]  # a bad name fails before any costing
    names = [acc.name for acc in accelerators]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise EenasError(f"--hardware: two accelerators are named '{name}' (give each once, with its own name)")
    costs = []
    for a in archs:
        log.info("costing %s on %d accelerators", a.label, len(hardware))
        costs.append(tuple(cost_arch(a.arch, h, weights or a.arch.weights, allocation) for h in hardware))
    return HardwareStudy(tuple(archs), tuple(names), tuple(_cores_text(h) for h in hardware), tuple(costs), weights,
                         allocation)


def plot_hardware_study(study: HardwareStudy, path: Path) -> Path:
    """(a) average ET of each arch on each accelerator over its best one; (b) the ranking's geometric means."""
    pairs, ranking = study.pairs(), study.ranking()
    order = list(ranking["hardware"])
    grid = pairs.pivot(index="arch", columns="hardware", values="relative_et").loc[[a.label for a in study.archs],
                                                                                   order]
    fig, (heat, bars) = panels(2, width=max(5.5, 0.75 * len(order) + 2), height=max(4.2, 0.32 * len(grid) + 2))
    image = heat.imshow(grid.to_numpy(), cmap="viridis_r", aspect="auto",
                        norm=LogNorm(vmin=1.0, vmax=max(float(grid.to_numpy().max()), 1.0 + 1e-6)))
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        heat.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=6,
                  color="white" if value > math.sqrt(float(grid.to_numpy().max())) else "black")
    heat.set_xticks(range(len(order)), order, rotation=45, ha="right", fontsize=7)
    heat.set_yticks(range(len(grid)), grid.index, fontsize=7)
    fig.colorbar(image, ax=heat, label="average ET / the arch's lowest")
    heat.set_title("(a) average ET of each arch, over its best accelerator\n(columns in ranking order; 1 = best)",
                   fontsize=10)
    xs, geomean = np.arange(len(ranking)), ranking["geomean_average_et"]
    drawn = bars.bar(xs, geomean / geomean.min(), width=0.6)
    label_bars(bars, drawn, [f"#{r}, wins {w}\n{g:.3g}" for r, w, g in zip(ranking["rank"], ranking["wins"], geomean)])
    bars.set_xticks(xs, order, rotation=45, ha="right", fontsize=7)
    style(bars, f"(b) ranking: geometric mean of the average ET over {len(study.archs)} archs\n"
          f"(labels: rank, archs won, geometric mean in {ET_UNIT})", "accelerator", "over the best accelerator's")
    bars.set_ylim(0, bars.get_ylim()[1] * 1.15)
    return save(fig, path)


def write_hardware_study(study: HardwareStudy, out: Path) -> list[Path]:
    """``hardware.csv`` (pairs), ``hardware_exits.csv``, ``hardware_ranking.csv``, ``hardware.md`` and ``.png``."""
    pairs, exits, ranking = study.pairs(), study.exits(), study.ranking()
    sources = pd.Series([a.source for a in study.archs]).value_counts()
    notes = (f"{len(study.archs)} archs on {len(study.hardware)} accelerators; weights "
             f"{study.weights or 'as each arch or accelerator file says'}, allocation {study.allocation}. "
             f"Exit ratios: {', '.join(f'{n} from {s}' for s, n in sources.items())} ('static': no stats file, "
             "every sample reaches the final exit). ET is energy (pJ) x latency (cycles) of one sample; the average "
             "ET is sum r_i E_i T_i. Ranking: geometric mean of the average ET over the archs (lower is better; "
             "equal within 1e-9 ranks equal); wins: archs for which no accelerator is cheaper (ties count for "
             "each); relative_et: average ET over the arch's lowest; et_ratio: over the static ET on the same "
             "accelerator. Per-exit costs are in hardware_exits.csv.")
    paths = [write_csv(out, "hardware", pairs), write_csv(out, "hardware_exits", exits),
             write_csv(out, "hardware_ranking", ranking), plot_hardware_study(study, out / "hardware.png")]
    shown = pairs.drop(columns=["best"])
    paths.append(write_markdown(out / "hardware.md", "Hardware study", [
        ("Settings", notes),
        ("Ranking", markdown(ranking)),
        ("Figure", "![hardware study](hardware.png)"),
        ("Per arch and accelerator", markdown(shown)),
    ]))
    return paths
