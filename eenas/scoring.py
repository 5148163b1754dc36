"""Exit routing arithmetic: which sample leaves where, how accurate the network is, what it costs.

A sample leaves at the first exit whose max-softmax confidence reaches that exit's
threshold; the final classifier takes the rest.  With each exit's logits cached, any
combination of exits and thresholds is scored exactly, in microseconds, without a model.
:func:`score` is the one scoring ``eenas evaluate``, the search and the studies share, and
:func:`live_arch` the network a search writes: without the exits no sample leaves at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from eenas.arch import Arch
from eenas.hardware import ArchCost


@dataclass(frozen=True)
class ExitStats:
    """Per exit (final classifier last) and sample: max-softmax confidence and correctness."""

    confidence: np.ndarray  # [exits, samples] float
    correct: np.ndarray  # [exits, samples] bool

    @classmethod
    def from_logits(cls, logits: Sequence[torch.Tensor], labels: torch.Tensor) -> ExitStats:
        stacked = torch.stack([lg.float() for lg in logits])  # [E, N, C]
        conf, pred = stacked.softmax(-1).max(-1)
        return cls(conf.numpy(), (pred == labels.view(1, -1)).numpy())

    def select(self, exits: Sequence[int]) -> ExitStats:
        """Rows ``exits`` (indices into this table) followed by the final classifier."""
        rows = [*exits, len(self.confidence) - 1]
        return ExitStats(self.confidence[rows], self.correct[rows])


@dataclass(frozen=True)
class ExitOutcome:
    exit_ratios: np.ndarray  # fraction of samples leaving at each exit; sums to 1
    exit_accuracy: np.ndarray  # accuracy among the samples leaving there (NaN if none)
    standalone_accuracy: np.ndarray  # accuracy of each exit on every sample
    accuracy: float  # accuracy of the early-exit network


def route(stats: ExitStats, thresholds: Sequence[float]) -> ExitOutcome:
    """Send each sample out at the first exit whose confidence reaches its threshold."""
    n_exits, n = stats.confidence.shape
    if len(thresholds) != n_exits - 1:
        raise ValueError(f"{len(thresholds)} thresholds for {n_exits - 1} early exits")
    take = np.ones((n_exits, n), dtype=bool)
    take[:-1] = stats.confidence[:-1] >= np.asarray(thresholds, dtype=np.float64)[:, None]
    leave = take.argmax(axis=0)
    hit = stats.correct[leave, np.arange(n)]
    counts = np.bincount(leave, minlength=n_exits)
    hits = np.bincount(leave, weights=hit, minlength=n_exits)
    with np.errstate(invalid="ignore", divide="ignore"):
        exit_acc = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    return ExitOutcome(counts / n, exit_acc, stats.correct.mean(axis=1), float(hit.mean()))


@dataclass(frozen=True)
class Score:
    """The objectives of one early-exit network, exact (:func:`score`) or predicted by the search."""

    accuracy: float
    static_accuracy: float  # the final classifier alone: the backbone without exits
    exit_ratios: tuple[float, ...]  # its exits', then the final classifier's
    cost: ArchCost

    def __post_init__(self) -> None:
        object.__setattr__(self, "exit_ratios", tuple(float(r) for r in self.exit_ratios))

    @property
    def accuracy_drop(self) -> float:
        """Points of accuracy lost against the static backbone."""
        return 100 * (self.static_accuracy - self.accuracy)

    @property
    def average_et(self) -> float:
        return self.cost.average_et(self.exit_ratios)

    @property
    def et_ratio(self) -> float:
        return self.cost.et_ratio(self.exit_ratios)

    @property
    def average_latency(self) -> float:
        return self.cost.average_latency(self.exit_ratios)

    @property
    def average_energy(self) -> float:
        return self.cost.average_energy(self.exit_ratios)

    def ratios_as(self, arch: Arch) -> tuple[float, ...]:
        """The exit ratios laid out as ``arch``'s exits, then the backbone's classifier, for a score of ``arch`` or
        of its :func:`live_arch` (0 where that dropped an exit or ended before the classifier)."""
        at = {e.after_block: r for e, r in zip(self.cost.exits, self.exit_ratios)}  # the classifier's is None
        return (*(at.get(e.after_block, 0.0) for e in arch.exits), at.get(None, 0.0))


def score(outcome: ExitOutcome, cost: ArchCost) -> Score:
    """A routed network (:func:`route`, the backbone's classifier last) priced by ``cost``.

    A network that ends at its last exit is routed with the classifier still last, so that its static accuracy is
    known; no sample reaches it, and ``cost`` has no stage for it.
    """
    n = len(cost.exits)
    if np.any(outcome.exit_ratios[n:]):
        raise ValueError(f"samples leave at {len(outcome.exit_ratios)} exits, but the cost prices {n}")
    return Score(outcome.accuracy, float(outcome.standalone_accuracy[-1]), outcome.exit_ratios[:n], cost)


def live_arch(arch: Arch, ratios: Sequence[float]) -> tuple[Arch, tuple[float, ...]]:
    """``arch`` without the exits no sample leaves at (``ratios``: its exits', then the classifier's), and the
    remaining exits' ratios.

    When no sample reaches the classifier, the last exit any sample leaves at takes all that reach it: the network
    ends there (``ExitConfig.final``), since the backbone after it and any later exit are dead weight.  Routing on
    the split ``ratios`` came from is unchanged (accuracy and the remaining ratios are the same); only the cost falls.
    """
    *early, last = ratios
    kept = [(e, r) for e, r in zip(arch.exits, early) if r > 0]
    exits = [e for e, _ in kept]
    if last <= 0 and exits:
        exits[-1] = replace(exits[-1], final=True)
    return replace(arch, exits=tuple(exits)), tuple(float(r) for _, r in kept) + ((float(last),) if last > 0 else ())


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean())
