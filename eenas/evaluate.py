"""Evaluate one arch: accuracy and exit ratios on the test split, costs from the hardware model."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from eenas.arch import Arch
from eenas.hardware import ArchCost, cost_arch, load_accelerator
from eenas.io import write_json
from eenas.scoring import ExitStats, route, top1
from eenas.train import Pipeline


@dataclass(frozen=True)
class Evaluation:
    """What ``eenas evaluate`` reports for one arch (test split unless named ``val_``)."""

    arch: Arch
    exits: pd.DataFrame
    accuracy: float
    val_accuracy: float
    static_accuracy: float
    average_et: float
    product_of_averages_et: float
    static_et: float
    et_ratio: float
    trained: tuple[str, ...]

    def summary(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k not in ("arch", "exits")}
        data["trained"] = list(self.trained)
        return data

    def to_json(self) -> dict:
        return {"arch": self.arch.to_dict(), **self.summary(), "exits": self.exits.to_dict(orient="records")}


def exit_table(arch: Arch, outcome, cost: ArchCost) -> pd.DataFrame:
    """One row per exit (final classifier last) with accuracy, ratio and cumulative costs."""
    rows = []
    names = [(e.after_block, e.head, e.threshold) for e in arch.exits] + [("final", "classifier", math.nan)]
    for i, ((block, head, threshold), stage) in enumerate(zip(names, cost.exits)):
        rows.append({
            "after_block": block, "head": head, "threshold": threshold,
            "exit_accuracy": outcome.exit_accuracy[i], "standalone_accuracy": outcome.standalone_accuracy[i],
            "exit_ratio": outcome.exit_ratios[i], "cum_macs": stage.cum_macs,
            "cum_cycles": stage.cum_latency_cycles, "cum_energy_pj": stage.cum_energy_pj, "cum_et": stage.cum_et,
        })
    return pd.DataFrame(rows)


def evaluate_arch(arch: Arch, pipeline: Pipeline, joint: bool = False, hardware: str | None = None) -> Evaluation:
    """Train (or load) what ``arch`` needs and score it on the validation and test splits."""
    hardware = hardware or arch.hardware
    load_accelerator(hardware)  # a bad accelerator fails now, not after the training
    logits = pipeline.arch_logits(arch, joint=joint)
    labels = pipeline.labels()
    thresholds = [e.threshold for e in arch.exits]
    outcomes = {}
    for split in ("val", "test"):
        stats = ExitStats.from_logits([getattr(lg, split) for lg in logits], getattr(labels, split))
        outcomes[split] = route(stats, thresholds)
    test = outcomes["test"]
    static_acc = top1(pipeline.final_logits(arch.quant.backbone).test, labels.test)
    cost = cost_arch(arch, hardware)
    avg = cost.average_et(test.exit_ratios)
    return Evaluation(
        arch=arch, exits=exit_table(arch, test, cost), accuracy=test.accuracy,
        val_accuracy=outcomes["val"].accuracy, static_accuracy=static_acc, average_et=avg,
        product_of_averages_et=cost.product_of_averages_et(test.exit_ratios), static_et=cost.static_et,
        et_ratio=avg / cost.static_et, trained=tuple(pipeline.trained),
    )


def stats_path(arch_path: Path) -> Path:
    """``arch.json`` -> ``stats.json``, ``arch_3.json`` -> ``stats_3.json``, else ``<stem>_stats.json``."""
    stem = arch_path.stem
    name = "stats" + stem[4:] if stem.startswith("arch") else f"{stem}_stats"
    return arch_path.with_name(name + ".json")


def save_evaluation(evaluation: Evaluation, path: Path) -> Path:
    return write_json(path, evaluation.to_json())
