"""Every true evaluation of a run as typed records, and what is computed from them.

After pymoo's ``Individual`` and ``Population``: a :class:`Record` is one evaluated genome
with its :class:`Score` (numbers, never formatted text), an :class:`Archive` holds them in
evaluation order and gives the Pareto front, the hypervolume and the predictor's training
set.  Strings are made only when a table is written (:meth:`Archive.table`); the
checkpoint stores the numbers (:meth:`Archive.to_json`), so a resumed run continues from
exactly the values an uninterrupted one holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from eenas.hardware.network import ArchCost, ExitCost
from eenas.io import join
from eenas.scoring import Score, live_arch
from eenas.search.objectives import DEFAULT_OBJECTIVES, Objective, get_objectives, hypervolume, objective_matrix
from eenas.search.space import Genome, SearchSpace, exits_text, genome_text

# archive.csv and pareto.csv: one column per key of Record.row, in this order (a co-search adds "hardware" after
# "exits": with_hardware)
COLUMNS = ["iteration", "source", "status", "genome", "exits", "n_exits", "backbone_bits", "exit_bits", "new_heads",
           "accuracy", "test_accuracy", "static_accuracy", "accuracy_drop", "exit_ratios", "cum_cycles",
           "cum_energy_pj", "average_et", "static_et", "et_ratio", "average_latency", "average_energy", "feasible"]


def with_hardware(names: list[str], space: SearchSpace) -> list[str]:
    """Table columns ``names`` with, in a co-search, the accelerator's name after the exits (a search on one
    accelerator writes the same files as before co-search existed)."""
    if not space.choices:
        return names
    at = names.index("exits") + 1
    return [*names[:at], "hardware", *names[at:]]


@dataclass(frozen=True)
class Record:
    """One true evaluation: the genome, where it came from, and its validation score (``None``: it failed)."""

    genome: Genome
    iteration: int
    source: str  # initial, selected (trained for the predictor's sake) or free (exactly scored front member)
    status: str  # "ok", or "failed: <reason>"
    new_heads: int  # heads it made the run train
    score: Score | None = None
    test_accuracy: float | None = None
    feasible: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def row(self, space: SearchSpace) -> dict:
        """The record as one table row: the only place its numbers become text.  Its exits are those of the network
        it was scored as (:func:`~eenas.scoring.live_arch`), whose ratios and costs the row holds."""
        arch = space.decode(self.genome)
        if self.score is not None:
            arch = live_arch(arch, self.score.ratios_as(arch))[0]
        row = dict.fromkeys(with_hardware(COLUMNS, space))
        row.update(iteration=self.iteration, source=self.source, status=self.status, genome=genome_text(self.genome),
                   exits=exits_text(arch), n_exits=len(arch.exits), backbone_bits=arch.quant.backbone.weights,
                   exit_bits=arch.quant.exits.weights, new_heads=self.new_heads, feasible=self.feasible)
        choice = space.choice(self.genome)
        if choice is not None:
            row["hardware"] = choice.name
        s = self.score
        if s is not None:
            row.update(accuracy=s.accuracy, test_accuracy=self.test_accuracy, static_accuracy=s.static_accuracy,
                       accuracy_drop=s.accuracy_drop, exit_ratios=join(s.exit_ratios),
                       cum_cycles=join(e.cum_latency_cycles for e in s.cost.exits),
                       cum_energy_pj=join(e.cum_energy_pj for e in s.cost.exits), average_et=s.average_et,
                       static_et=s.cost.static_et, et_ratio=s.et_ratio, average_latency=s.average_latency,
                       average_energy=s.average_energy)
        return row

    def to_json(self) -> dict:
        """Plain numbers (tuples become JSON lists); :meth:`from_json` restores an equal record."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Record:
        score = data["score"]
        if score is not None:
            cost = score["cost"]
            score = Score(score["accuracy"], score["static_accuracy"], tuple(score["exit_ratios"]),
                          ArchCost(tuple(ExitCost(**e) for e in cost["exits"]), cost["static_latency_cycles"],
                                   cost["static_energy_pj"], cost["static_macs"]))
        return cls(**{**data, "genome": tuple(data["genome"]), "score": score})


class Archive:
    """A run's records in evaluation order, at most one per genome; its front is on ``objectives``."""

    def __init__(self, space: SearchSpace, records: Iterable[Record] = (),
                 objectives: Sequence[Objective] = get_objectives(DEFAULT_OBJECTIVES)) -> None:
        self.space, self.objectives = space, tuple(objectives)
        self.records: list[Record] = []
        self._genomes: set[Genome] = set()
        for record in records:
            self.add(record)

    def add(self, record: Record) -> None:
        if record.genome in self._genomes:
            raise ValueError(f"genome {genome_text(record.genome)} is already in the archive")
        self.records.append(record)
        self._genomes.add(record.genome)

    def __contains__(self, genome: Genome) -> bool:
        return genome in self._genomes

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def ok(self) -> list[Record]:
        return [r for r in self.records if r.ok]

    def pareto(self) -> list[Record]:
        """Non-dominated feasible records, ordered by the objectives after the first, then the first (the default,
        accuracy and average ET: cheapest first)."""
        ok = [r for r in self.ok if r.feasible]
        if not ok:
            return []
        F = objective_matrix(self.objectives, [r.score for r in ok])
        front = [ok[i] for i in NonDominatedSorting().do(F, only_non_dominated_front=True)]
        first, *rest = self.objectives
        # The genome's text breaks the last ties, as the CSV archive of earlier versions did.
        front.sort(key=lambda r: (*(o.minimised(r.score) for o in rest), first.minimised(r.score),
                                  self.space.n_exits(r.genome), genome_text(r.genome)))
        # Ties in every objective (e.g. an unused extra exit) keep only the simplest network.
        unique: dict[tuple[float, ...], Record] = {}
        for r in front:
            unique.setdefault(tuple(o.tie(o.read(r.score)) for o in self.objectives), r)
        return list(unique.values())

    def hypervolume(self, reference: ArchCost) -> float:
        """Of the front, normalised by ``reference`` (the static backbone at the highest precision)."""
        return hypervolume(self.objectives, [r.score for r in self.pareto()], reference)

    def training_set(self) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """The predictor's inputs: genomes, exit ratios (laid out as each genome's exits, then the classifier) and
        accuracies of every successful record."""
        ok = self.ok
        return (np.array([r.genome for r in ok]),
                [np.array(r.score.ratios_as(self.space.decode(r.genome))) for r in ok],
                np.array([r.score.accuracy for r in ok]))

    def table(self, records: Iterable[Record] | None = None) -> pd.DataFrame:
        """``records`` (default: all) as rows of :data:`COLUMNS` (:func:`with_hardware`), then a column per objective
        of the run that is none of them (``energy``, ``p99_latency``: the values its front was chosen by; the default
        objectives add none, so such runs write the same files as before ``--objectives``)."""
        records = list(self.records if records is None else records)
        table = pd.DataFrame([r.row(self.space) for r in records], columns=with_hardware(COLUMNS, self.space))
        for o in self.objectives:
            if o.name not in table:
                table[o.name] = [math.nan if r.score is None else o.read(r.score) for r in records]
        return table

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self.records]

    @classmethod
    def from_json(cls, space: SearchSpace, data: list[dict],
                  objectives: Sequence[Objective] = get_objectives(DEFAULT_OBJECTIVES)) -> Archive:
        return cls(space, (Record.from_json(r) for r in data), objectives)
