"""True evaluation of candidates: train what is missing, then score exactly from cached logits.

A head at (mount, head type, exit precision) on a backbone precision is trained once and its
logits cached; after that every candidate using it scores exactly in microseconds (routing
on the validation split) plus the cost model's milliseconds.  A candidate is scored as the
network it would be deployed as: without the exits no validation sample leaves at
(:func:`eenas.scoring.live_arch`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from eenas.arch import Arch, Precision
from eenas.hardware import ArchCost, cost_arch
from eenas.scoring import ExitStats, Score, live_arch, route, score
from eenas.search.objectives import OBJECTIVES
from eenas.train import Pipeline
from eenas.train.loops import TrainingDiverged

log = logging.getLogger(__name__)



class HeadId(NamedTuple):
    """One trainable head: a plain tuple (hashes and compares as one), with names for its fields."""

    backbone: Precision
    mount: int
    head: str
    exits: Precision


@dataclass(frozen=True)
class Constraints:
    max_accuracy_drop: float = 1.0  # percentage points below the static backbone (same precision)
    max_latency: float | None = None  # average cycles per sample
    max_energy: float | None = None  # average pJ per sample
    max_p99_latency: float | None = None  # cycles within which 99% of the samples leave

    def violations(self, accuracy_drop: float, latency: float, energy: float, p99_latency: float = 0.0) -> list[float]:
        """Each constraint as ``g <= 0`` (pymoo's convention), normalised to its bound."""
        g = [accuracy_drop * 100 - self.max_accuracy_drop]
        for value, bound in ((latency, self.max_latency), (energy, self.max_energy),
                             (p99_latency, self.max_p99_latency)):
            if bound is not None:
                g.append(value / bound - 1)
        return g

    def of(self, score: Score) -> list[float]:
        """:meth:`violations` of a scored network."""
        p99 = OBJECTIVES["p99_latency"].read(score) if self.max_p99_latency is not None else 0.0
        return self.violations(score.static_accuracy - score.accuracy, score.average_latency, score.average_energy,
                               p99)

    def feasible(self, score: Score) -> bool:
        return bool(max(self.of(score)) <= 0)


class Evaluator:
    """Scores archs from cached exit logits, training missing heads on demand."""

    def __init__(self, pipeline: Pipeline, hardware: str | None, weights: str | None = None) -> None:
        """``hardware`` overrides every arch's accelerator (None: each is costed on the one it names)."""
        self.pipeline = pipeline
        self.hardware, self.weights = hardware, weights
        self._stats: dict[tuple, ExitStats] = {}  # (head id or backbone precision, split) -> stats
        self._costs: dict[Arch, ArchCost] = {}  # arch with every threshold at 1 -> its cost
        # Heads this run has evaluated.  Whether a candidate is scored exactly depends on this
        # set, never on what other runs left in the disk cache, so a run's trajectory is the
        # same with a cold or a warm cache; the cache only saves the training time.
        self.known: set[HeadId] = set()
        # Heads (and backbone precisions) whose training diverged here or whose cluster job kept failing, with the
        # reason: the candidates that hold one fail at once, for the rest of the run, and it is never trained again.
        self.failed: dict[HeadId | Precision, str] = {}

    @staticmethod
    def heads(arch: Arch) -> list[HeadId]:
        q = arch.quant
        return [HeadId(q.backbone, e.after_block, e.head, q.exits) for e in arch.exits]

    def missing(self, arch: Arch) -> list[HeadId]:
        return [h for h in self.heads(arch) if h not in self.known]

    def _exit_stats(self, key, logits_fn, split: str) -> ExitStats:
        if (key, split) not in self._stats:
            labels = self.pipeline.labels()
            try:
                logits = logits_fn()
            except TrainingDiverged as exc:
                self.failed[key] = f"{type(exc).__name__}: {exc}"  # the reason a failed cluster job gives
                raise
            for s in ("val", "test"):
                self._stats[(key, s)] = ExitStats.from_logits([getattr(logits, s)], getattr(labels, s))
        return self._stats[(key, split)]

    def _head_stats(self, head: HeadId, split: str = "val") -> ExitStats:
        return self._exit_stats(head, lambda: self.pipeline.exit_logits(*head), split)

    def head_stats(self, head: HeadId, split: str = "val") -> ExitStats:
        """One head's per-sample confidence and correctness (one row); trains it if the cache lacks it."""
        return self._head_stats(head, split)

    def final_stats(self, p: Precision, split: str = "val") -> ExitStats:
        """The final classifier's per-sample confidence and correctness on backbone precision ``p`` (one row)."""
        return self._exit_stats(p, lambda: self.pipeline.final_logits(p), split)

    def learn(self, head: HeadId) -> None:
        """Train one head (or load it from the cache) and count it as known (may raise)."""
        self._head_stats(head)
        self.known.add(head)

    def stats(self, arch: Arch, split: str = "val") -> ExitStats:
        """Confidence/correctness of every exit of ``arch``; trains missing heads (may raise), but counts none as
        known: only :meth:`learn` and :meth:`evaluate` change what the run scores exactly."""
        parts = [self._head_stats(h, split) for h in self.heads(arch)]
        parts.append(self.final_stats(arch.quant.backbone, split))
        return ExitStats(np.concatenate([s.confidence for s in parts]), np.concatenate([s.correct for s in parts]))

    def static_accuracy(self, p: Precision, split: str = "val") -> float:
        return float(self.final_stats(p, split).correct.mean())

    def cost(self, arch: Arch) -> ArchCost:
        """The cost model's price of ``arch``; thresholds do not enter it, so archs differing only there share one
        (NSGA-II and the predictors ask for thousands of those)."""
        key = replace(arch, exits=tuple(replace(e, threshold=1.0) for e in arch.exits))
        if key not in self._costs:
            self._costs[key] = cost_arch(arch, self.hardware, self.weights)
        return self._costs[key]

    def live(self, arch: Arch) -> Arch:
        """``arch`` as deployed: without the exits no validation sample leaves at (trains the heads it lacks)."""
        return live_arch(arch, route(self.stats(arch), [e.threshold for e in arch.exits]).exit_ratios)[0]

    def score(self, arch: Arch, split: str = "val") -> Score:
        """Exact score of :meth:`live` ``(arch)`` on ``split`` (trains the heads it lacks first)."""
        live = self.live(arch)
        return score(route(self.stats(live, split), [e.threshold for e in live.exits]), self.cost(live))

    def predicted(self, arch: Arch, accuracy: float, ratios: Sequence[float]) -> Score:
        """A predicted score of ``arch`` (``ratios``: its exits', then the classifier's), priced as the network it
        would be deployed as, like :meth:`score`."""
        live, live_ratios = live_arch(arch, ratios)
        return Score(accuracy, self.static_accuracy(arch.quant.backbone), live_ratios, self.cost(live))

    def _failure(self, arch: Arch) -> str | None:
        return next((self.failed[k] for k in [*self.heads(arch), arch.quant.backbone] if k in self.failed), None)

    def try_score(self, arch: Arch) -> tuple[Score | None, str]:
        """Like :meth:`score`, but a head (or backbone) whose training diverged, now or earlier in the run, or whose
        cluster job kept failing, gives ``(None, reason)``; it is never trained again."""
        if self._failure(arch) is None:
            try:
                return self.score(arch), "ok"
            except TrainingDiverged:
                pass  # _exit_stats recorded it
        reason = self._failure(arch)
        log.warning("candidate failed: %s", reason)
        return None, f"failed: {reason}"

    def evaluate(self, arch: Arch) -> tuple[Score | None, str]:
        """A true evaluation of the run: :meth:`try_score`, then, if it scored, its heads count as known."""
        score, status = self.try_score(arch)
        if score is not None:
            self.known.update(self.heads(arch))
        return score, status
