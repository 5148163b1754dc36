"""A search's run directory: every file a run writes, and the checkpoint it resumes from.

``config.json`` (settings, versions, cache entries), ``checkpoint.json`` (:class:`SearchState`),
``archive.csv`` and ``predictor.csv`` (after every iteration), ``holdout.csv`` and
``holdout_points.csv``, ``pareto.csv`` with ``pareto/arch_<k>.json`` and ``stats_<k>.json``,
``pareto.png``, and in a co-search ``hardware/`` (its composed accelerators).  Every file is
written atomically, except ``events.jsonl``: a log a person can follow while the run goes on
(``tail -f``), one JSON line appended per event.
"""

from __future__ import annotations

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
from eenas.io import read_json, write_json
from eenas.report.pareto import Axis, plot_pareto, projections
from eenas.report.tables import write_csv
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
PARETO_COLUMNS = ["k", "exits", "backbone_bits", "exit_bits", "accuracy", "test_accuracy", "accuracy_drop",
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
        write_csv(self.path, "archive", state.archive.table())
        write_csv(self.path, "predictor", pd.DataFrame(state.history))

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
        write_csv(self.path, "holdout", holdout.metrics)
        write_csv(self.path, "holdout_points", holdout.points)

    def write_front(self, archive: Archive, front: list[Record]) -> pd.DataFrame:
        """``pareto.csv``: the front's records, numbered ``k`` from the cheapest."""
        table = archive.table(front)
        table.insert(0, "k", range(len(table)))
        write_csv(self.path, "pareto", table)
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

        everything, best, paths = archive.table(archive.ok), archive.table(front), []
        by_name = {o.name: o for o in objectives}
        for a, b, name in projections(list(by_name)):
            plot_pareto(everything, best, statics, title, self.path / name, x=_axis(by_name[b]), y=_axis(by_name[a]),
                        staircase=len(objectives) == 2)
            paths.append(self.path / name)
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


def _axis(objective: Objective) -> Axis:
    """An objective's axis of the Pareto figure: tables and statics hold its values under its name."""
    return Axis(objective.name, objective.name, objective.label, fraction=objective.scale is None)


def _versions() -> dict:
    import pymoo
    import sklearn
    import torch

    return {"torch": torch.__version__, "pymoo": pymoo.__version__, "sklearn": sklearn.__version__,
            "numpy": np.__version__}
