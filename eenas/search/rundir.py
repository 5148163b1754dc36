"""A search's run directory: every file a run writes, and the checkpoint it resumes from.

``config.json`` (settings, versions, cache entries), ``checkpoint.json`` (:class:`SearchState`),
``archive.csv`` and ``predictor.csv`` (after every iteration), ``holdout.csv`` and
``holdout_points.csv``, ``pareto.csv`` with ``pareto/arch_<k>.json`` and ``stats_<k>.json``,
``pareto.png``, and in a co-search ``hardware/`` (its composed accelerators).  Every file is
written atomically, except ``events.jsonl``: a log a person can follow while the run goes on
(``tail -f``), one JSON line appended per event.
"""

from __future__ import annotations

import itertools
import json
import logging
import platform
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from eenas import __version__
from eenas.arch import save_arch
from eenas.errors import EenasError
from eenas.evaluate import Evaluation, save_evaluation
from eenas.io import atomic_write, read_json, write_json, write_text
from eenas.search.archive import Archive, Record
from eenas.search.holdout import Holdout
from eenas.search.objectives import DEFAULT_OBJECTIVES, Objective, get_objectives
from eenas.search.space import SearchSpace
from eenas.train.cache import Cache

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.json"
EVENTS = "events.jsonl"
CHECKPOINT_VERSION = 3  # 3: scores of the live networks (scoring.live_arch); 2: the archive as numbers (1: text)
START_OVER = "pass --force to start the run over (what it trained stays cached) or choose a new --out"
HARDWARE_FOLDER = "hardware"  # a co-search's composed accelerators, which its archs name (eenas.hardware.space)
FRONT_COLUMNS = ["k", "exits", "backbone_bits", "exit_bits", "accuracy", "test_accuracy", "accuracy_drop",
                 "et_ratio", "average_et", "average_latency", "average_energy"]


@dataclass
class SearchState:
    """What a checkpoint holds."""

    archive: Archive
    iteration: int = 0  # iterations finished (0 = initial sample pending)
    history: list[dict] = field(default_factory=list)  # predictor.csv's rows
    population: list[list[int]] | None = None  # NSGA-II's last population
    rng_state: dict | None = None

    def to_json(self) -> dict:
        return {"version": CHECKPOINT_VERSION, "iteration": self.iteration, "archive": self.archive.to_json(),
                "history": self.history, "population": self.population, "rng_state": self.rng_state}

    @classmethod
    def from_json(cls, space: SearchSpace, data: dict, objectives: Sequence[Objective]) -> SearchState:
        return cls(Archive.from_json(space, data["archive"], objectives), data["iteration"], data["history"],
                   data["population"], data["rng_state"])


class RunDir:
    """Opens (fresh, resumed or forced) and writes one run directory; ``settings`` is the run's ``config.json``."""

    def __init__(self, path: Path, settings: dict) -> None:
        self.path, self.settings = Path(path), settings
        self._earlier_cache: dict[str, list[str]] = {"loaded": [], "trained": []}  # of a resumed run's sessions
        self.listeners: list[Callable[[str, dict], None]] = []  # each gets every event's kind and its line

    def open(self, space: SearchSpace, cache: Cache, resume: bool = False, force: bool = False,
             objectives: Sequence[Objective] = get_objectives(DEFAULT_OBJECTIVES)) -> SearchState:
        """The state to continue from: the checkpoint's with ``resume``, else a fresh one in an emptied directory.

        Refuses a non-empty directory without ``resume`` or ``force`` (with ``resume``: one without a checkpoint),
        a resume with other settings, and one from a truncated or missing ``config.json`` or checkpoint.
        """
        ckpt = self.path / CHECKPOINT
        if resume and ckpt.exists():
            return self._resume(space, objectives, ckpt)
        if self.path.exists() and any(self.path.iterdir()):
            if not force:
                raise EenasError(f"{self.path} has no {CHECKPOINT} to resume from; {START_OVER}" if resume else
                                 f"{self.path} is not empty: pass --resume to continue it or --force to overwrite it")
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_config(cache)
        return SearchState(Archive(space, objectives=objectives))

    def _resume(self, space: SearchSpace, objectives: Sequence[Objective], ckpt: Path) -> SearchState:
        """The checkpoint's state, once ``config.json`` shows the run was searched with these settings."""
        try:
            config, data = read_json(self.path / "config.json"), read_json(ckpt)
        except EenasError as exc:
            raise EenasError(f"cannot resume: {exc}; {START_OVER}") from None
        saved, now = config.get("search") if isinstance(config, dict) else None, self.settings
        if not isinstance(saved, dict):
            raise EenasError(f"cannot resume: {self.path / 'config.json'} holds no 'search' settings; {START_OVER}")
        if saved != now:
            diff = next(k for k in {**now, **saved} if saved.get(k) != now.get(k))  # a key may be new
            was = saved[diff] if diff in saved else "not recorded: the default of its version"
            raise EenasError(f"{self.path} was searched with a different '{diff}' ({was}); "
                             "resume with the same options or choose a new --out")
        version = data.get("version") if isinstance(data, dict) else None
        if version != CHECKPOINT_VERSION:
            raise EenasError(f"{ckpt}: written by an older eenas (checkpoint version {version}); start a new --out")
        try:
            state = SearchState.from_json(space, data, objectives)
        except (KeyError, TypeError, ValueError) as exc:  # valid JSON, but not what this version writes
            raise EenasError(f"cannot resume: {ckpt} is not a complete checkpoint ({type(exc).__name__}: {exc}); "
                             f"{START_OVER}") from None
        self._earlier_cache = config.get("cache", self._earlier_cache)
        log.info("resuming %s after iteration %d", self.path, state.iteration)
        return state

    def write_config(self, cache: Cache) -> None:
        """``config.json``: every setting, the versions, and the cache entries the run loaded and trained.

        Over every session of a resumed run; an entry one session trained and a later one
        loaded counts as trained.
        """
        trained = list(dict.fromkeys([*self._earlier_cache["trained"], *cache.trained]))
        done = set(trained)
        loaded = [k for k in dict.fromkeys([*self._earlier_cache["loaded"], *cache.loaded]) if k not in done]
        write_json(self.path / "config.json", {"search": self.settings, "eenas_version": __version__,
                                               "python": platform.python_version(), "versions": _versions(),
                                               "cache": {"loaded": loaded, "trained": trained}})

    def save(self, state: SearchState, cache: Cache) -> None:
        """After every iteration: the checkpoint, ``config.json``, ``archive.csv`` and ``predictor.csv``."""
        write_json(self.path / CHECKPOINT, state.to_json())
        self.write_config(cache)
        write_csv(self.path / "archive.csv", state.archive.table())
        write_csv(self.path / "predictor.csv", pd.DataFrame(state.history))

    def event(self, kind: str, **fields) -> None:
        """Append one line to ``events.jsonl``: the UTC time, ``kind`` and ``fields`` (NaN written as null);
        then pass the line to every listener."""
        line = _plain({"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": kind, **fields})
        with open(self.path / EVENTS, "a") as fh:
            fh.write(json.dumps(line) + "\n")
        for listener in self.listeners:
            listener(kind, line)

    def trained(self, entry: str, seconds: float) -> None:
        """A cache listener: one event per trained job."""
        self.event("trained", entry=entry, seconds=seconds)

    def write_holdout(self, holdout: Holdout) -> None:
        """``holdout.csv`` (the predictor's held-out metrics) and ``holdout_points.csv`` (every held-out arch)."""
        write_csv(self.path / "holdout.csv", holdout.metrics)
        write_csv(self.path / "holdout_points.csv", holdout.points)

    def write_front(self, archive: Archive, front: list[Record]) -> pd.DataFrame:
        """``pareto.csv``: the front's records, numbered ``k`` from the cheapest."""
        table = archive.table(front)
        table.insert(0, "k", range(len(table)))
        write_csv(self.path / "pareto.csv", table)
        return table

    def write_pareto_arch(self, k: int, evaluation: Evaluation) -> None:
        """``pareto/arch_<k>.json`` (with the training block that reproduces it) and ``stats_<k>.json``."""
        save_arch(evaluation.arch, self.path / "pareto" / f"arch_{k}.json")
        save_evaluation(evaluation, self.path / "pareto" / f"stats_{k}.json", written_by="eenas search")

    def write_plot(self, archive: Archive, front: list[Record], statics: list[dict], title: str) -> list[Path]:
        """``pareto.png`` for the default objectives; else one figure per pair of objectives,
        ``pareto_<a>_<b>.png`` (``statics`` hold each objective's static value under its name)."""
        objectives = archive.objectives
        if [o.name for o in objectives] == list(DEFAULT_OBJECTIVES):
            plot_pareto(archive.table(archive.ok), archive.table(front), statics, title, self.path / "pareto.png")
            return [self.path / "pareto.png"]

        def table(records: list[Record]) -> pd.DataFrame:  # the objectives' values beside the written columns
            return archive.table(records).assign(**{o.name: [o.read(r.score) for r in records] for o in objectives})

        everything, best, paths = table(archive.ok), table(front), []
        for i, a in enumerate(objectives):
            for b in objectives[i + 1:]:
                path = self.path / f"pareto_{a.name}_{b.name}.png"
                plot_pareto(everything, best, statics, title, path, x=Axis.of(b), y=Axis.of(a),
                            staircase=len(objectives) == 2)
                paths.append(path)
        return paths


def _plain(value):
    """``value`` with NaN and infinite floats as ``None`` and numpy scalars as Python ones: strict JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not np.isfinite(value) else value


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_text(path, frame.to_csv(index=False))


@dataclass(frozen=True)
class Axis:
    """One axis of :func:`plot_pareto`: a column of the tables and the key of the static backbones' value."""

    column: str
    static: str
    label: str
    fraction: bool = False  # a share, shown in %; else a cost, shown over the reference static backbone's (log)

    @classmethod
    def of(cls, objective: Objective) -> Axis:
        """An objective's axis: tables and statics hold its values under its name."""
        return cls(objective.name, objective.name, objective.label, fraction=objective.scale is None)


ACCELERATOR_LEGEND = 0.18  # share of a co-search figure's width its accelerators' legend takes, at the right
ACCURACY_AXIS = Axis("accuracy", "accuracy", "validation accuracy", fraction=True)
ET_AXIS = Axis("average_et", "static_et", "average ET")


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = max(statics, key=lambda s: s["bits"])

    def scaled(axis: Axis, values):
        return 100 * values if axis.fraction else values / reference[axis.static]

    legend_width = ACCELERATOR_LEGEND if "hardware" in front and not front.empty else 0.0
    fig, ax = plt.subplots(figsize=(7.5 / (1 - legend_width), 4.8), dpi=120)
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
    fig.tight_layout(rect=(0, 0, 1 - legend_width, 1))
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    plt.close(fig)


def _front_colours(fig, ax, front: pd.DataFrame) -> Callable[[pd.DataFrame], dict]:
    """Scatter colours of front rows: by accelerator in a co-search (a legend of them beside the plot), else by
    number of early exits (a colour bar)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm
    from matplotlib.lines import Line2D

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


def _versions() -> dict:
    import pymoo
    import sklearn
    import torch

    return {"torch": torch.__version__, "pymoo": pymoo.__version__, "sklearn": sklearn.__version__,
            "numpy": np.__version__}
