"""The search's objectives: what a candidate's score is judged by (``--objectives``).

An :class:`Objective` reads one number from a :class:`~eenas.scoring.Score`, says whether it is maximised, and how it
enters the hypervolume: as a value normalised by the static backbone at the space's highest precision (so archs of
every precision share one scale), bounded by ``bound``.  The problem, the selection, the archive's front, the
hypervolume, the holdout and the predictor benchmark all read the run's objectives from here; a new objective is one
entry of :data:`OBJECTIVES`.

Tail latency: an early-exit network's latency is a distribution over inputs, each input paying the cumulative
latency of the exit it leaves at.  ``p99_latency`` is its 99th percentile: the smallest exit latency ``L_k`` such that
the share of inputs leaving at an exit at most that slow is at least 0.99.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from eenas.errors import EenasError
from eenas.hardware.network import ArchCost
from eenas.scoring import Score

DEFAULT_OBJECTIVES = ("accuracy", "average_et")
COST_BOUND = 1.5  # a cost objective's hypervolume bound: 1.5 times the reference static backbone's cost
TIE_DIGITS = 9  # objective values equal to this many digits are ties on the front (see Objective.tie)


def latency_quantile(cost: ArchCost, ratios: Sequence[float], q: float) -> float:
    """The ``q`` quantile of the per-input latency: the least exit latency whose cumulative ratio reaches ``q``."""
    latency = np.array([e.cum_latency_cycles for e in cost.exits], dtype=float)
    order = np.argsort(latency, kind="stable")
    reached = np.cumsum(np.asarray(ratios, dtype=float)[order]) >= q - 1e-12  # float sums of ratios fall short
    return float(latency[order][np.argmax(reached)] if reached.any() else latency.max())


@dataclass(frozen=True)
class Objective:
    """One objective: ``read`` gives its value in its own units; ``scale`` the reference it is normalised by."""

    name: str
    label: str  # axis label of the figures
    read: Callable[[Score], float]
    maximise: bool = False
    scale: Callable[[ArchCost], float] | None = None  # the reference static backbone's value (None: a fraction)

    def minimised(self, score: Score) -> float:
        """The value pymoo minimises (a maximised objective negated)."""
        value = self.read(score)
        return -value if self.maximise else value

    def normalised(self, score: Score, reference: ArchCost) -> float:
        """The hypervolume's coordinate: ``1 - value`` for a maximised fraction, else value over the reference's."""
        return 1 - self.read(score) if self.maximise else self.read(score) / self.scale(reference)

    @property
    def bound(self) -> float:
        """The hypervolume's reference point in :meth:`normalised` units."""
        return 1.0 if self.maximise else COST_BOUND

    def tie(self, value: float) -> float:
        """``value`` rounded so equal networks compare equal: fractions to decimals, costs to significant digits."""
        return round(value, TIE_DIGITS) if self.scale is None else float(f"{value:.{TIE_DIGITS}g}")


OBJECTIVES = {o.name: o for o in (
    Objective("accuracy", "validation accuracy", lambda s: s.accuracy, maximise=True),
    Objective("average_et", "average ET (pJ x cycles)", lambda s: s.average_et, scale=lambda c: c.static_et),
    Objective("energy", "average energy (pJ)", lambda s: s.average_energy, scale=lambda c: c.static_energy_pj),
    Objective("latency", "average latency (cycles)", lambda s: s.average_latency,
              scale=lambda c: c.static_latency_cycles),
    Objective("p95_latency", "p95 latency (cycles)", lambda s: latency_quantile(s.cost, s.exit_ratios, 0.95),
              scale=lambda c: c.static_latency_cycles),
    Objective("p99_latency", "p99 latency (cycles)", lambda s: latency_quantile(s.cost, s.exit_ratios, 0.99),
              scale=lambda c: c.static_latency_cycles),
)}


def get_objectives(names: Sequence[str]) -> tuple[Objective, ...]:
    """The objectives named, in order; at least two, each once, each known (``--objectives``)."""
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise EenasError(f"--objectives: unknown objective '{unknown[0]}' (known: {', '.join(OBJECTIVES)})")
    if len(names) < 2:
        raise EenasError(f"--objectives: a search needs at least two objectives (got {','.join(names) or 'none'})")
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise EenasError(f"--objectives: '{twice}' is given twice")
    return tuple(OBJECTIVES[n] for n in names)


def objective_matrix(objectives: Sequence[Objective], scores: Sequence[Score]) -> np.ndarray:
    """pymoo's ``F``: one row per score, the objectives minimised."""
    return np.array([[o.minimised(s) for o in objectives] for s in scores])


def hypervolume(objectives: Sequence[Objective], scores: Sequence[Score], reference: ArchCost) -> float:
    """Of ``scores`` (a front) in :meth:`Objective.normalised` coordinates, bounded by each objective's ``bound``;
    pymoo's indicator, for any number of objectives."""
    from pymoo.indicators.hv import HV

    if not scores:
        return 0.0
    F = np.array([[o.normalised(s, reference) for o in objectives] for s in scores])
    return float(HV(ref_point=np.array([o.bound for o in objectives]))(F))
