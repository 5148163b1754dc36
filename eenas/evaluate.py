"""Evaluate one arch: accuracy and exit ratios on the test split, costs from the hardware model."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from eenas.arch import Arch, TrainingRecord, arch_data
from eenas.errors import EenasError
from eenas.hardware import ArchCost, cost_arch, load_accelerator
from eenas.io import write_json
from eenas.scoring import ExitStats, Score, route, score
from eenas.train import Pipeline, TrainConfig

log = logging.getLogger(__name__)
EVALUATE_WRITER = "eenas evaluate"  # the ``written_by`` of its JSON files: the only ones it overwrites


@dataclass(frozen=True)
class Evaluation:
    """What ``eenas evaluate`` reports for one arch (test split unless named ``val_``)."""

    arch: Arch  # as evaluated: its hardware, and the ``training`` block of the weights the numbers come from
    exits: pd.DataFrame
    accuracy: float
    val_accuracy: float
    val_exit_ratios: tuple[float, ...]  # where validation samples leave (a search drops exits none leaves at)
    static_accuracy: float
    average_et: float
    product_of_averages_et: float
    static_et: float
    et_ratio: float
    trained: tuple[str, ...]  # what this evaluation trained (rather than loaded)
    score: Score  # the test split's, as numbers (``exits`` is the table for people)

    def summary(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k not in ("arch", "exits", "score")}
        data["trained"] = list(self.trained)
        return data

    def to_json(self) -> dict:
        return {"arch": self.arch.to_dict(), **self.summary(), "exits": self.exits.to_dict(orient="records")}


def exit_table(arch: Arch, outcome, cost: ArchCost) -> pd.DataFrame:
    """One row per exit (final classifier last, unless the network ends before it) with accuracy, ratio and
    cumulative costs; a final exit has no threshold, as the classifier has none."""
    rows = []
    names = [(e.after_block, e.head, math.nan if e.final else e.threshold) for e in arch.exits]
    names.append(("final", "classifier", math.nan))
    for i, ((block, head, threshold), stage) in enumerate(zip(names, cost.exits)):
        rows.append({
            "after_block": block, "head": head, "threshold": threshold,
            "exit_accuracy": outcome.exit_accuracy[i], "standalone_accuracy": outcome.standalone_accuracy[i],
            "exit_ratio": outcome.exit_ratios[i], "cum_macs": stage.cum_macs,
            "cum_cycles": stage.cum_latency_cycles, "cum_energy_pj": stage.cum_energy_pj, "cum_et": stage.cum_et,
        })
    return pd.DataFrame(rows)


def evaluate_arch(
    arch: Arch, pipeline: Pipeline, joint: bool = False, hardware: str | None = None, weights: str | None = None
) -> Evaluation:
    """Train (or load) what ``arch`` needs and score it on the validation and test splits.

    ``hardware`` and ``weights`` override the arch's accelerator and its weight mode.
    """
    hardware, weights = hardware or arch.hardware, weights or arch.weights
    load_accelerator(hardware).with_weights(weights)  # a bad accelerator fails now, not after the training
    before = len(pipeline.trained)
    logits = pipeline.arch_logits(arch, joint=joint)
    labels = pipeline.labels()
    thresholds = [e.threshold for e in arch.exits]
    outcomes = {}
    for split in ("val", "test"):
        stats = ExitStats.from_logits([getattr(lg, split) for lg in logits], getattr(labels, split))
        outcomes[split] = route(stats, thresholds)
    test = outcomes["test"]
    cost = cost_arch(arch, hardware, weights)
    s, val = score(test, cost), score(outcomes["val"], cost)
    return Evaluation(
        arch=replace(arch, hardware=hardware, weights=weights,
                     training=training_record(pipeline.cfg, "joint" if joint else "none")),
        exits=exit_table(arch, test, cost), accuracy=s.accuracy,
        val_accuracy=val.accuracy, val_exit_ratios=val.exit_ratios, static_accuracy=s.static_accuracy,
        average_et=s.average_et, product_of_averages_et=cost.product_of_averages_et(s.exit_ratios),
        static_et=cost.static_et,
        et_ratio=s.et_ratio, trained=tuple(pipeline.trained[before:]), score=s,
    )


def training_record(cfg: TrainConfig, finetune: str = "none") -> TrainingRecord:
    """The arch file's ``training`` block for weights trained under ``cfg`` (its cache identity, by name)."""
    identity = cfg.identity()
    return TrainingRecord(cfg.budget.name, identity["seed"], finetune, identity["amp"], identity["training_version"],
                          identity["val_fraction"], tuple(identity["recipe"].items()), identity["pretrained"])


def check_training(arch: Arch, cfg: TrainConfig, finetune: str, source: str) -> list[str]:
    """Log one warning line when ``cfg`` does not train ``arch`` as its ``training`` block says.

    Its numbers then differ from the ones the file was written with (and whatever is not
    cached is trained).  Returns the differences, ``field recorded -> now``.
    """
    if arch.training is None:
        return []
    was, now = arch.training.to_dict(arch), training_record(cfg, finetune).to_dict(arch)
    was_recipe, now_recipe = was.pop("recipe"), now.pop("recipe")
    changed = [f"{k} {was[k]} -> {now[k]}" for k in was if was[k] != now[k]]
    if was["budget"] == now["budget"]:  # another budget has another recipe anyway
        changed += [f"recipe.{k} {was_recipe.get(k)} -> {now_recipe.get(k)}"
                    for k in sorted({**was_recipe, **now_recipe}) if was_recipe.get(k) != now_recipe.get(k)]
    if changed:
        log.warning("%s: evaluated with other training than its training block records (%s): its numbers will "
                    "differ from those it was written with", source, ", ".join(changed))
    return changed


def eval_path(arch_path: Path) -> Path:
    """``arch_3.json`` -> ``arch_3.eval.json``: beside the arch, a name no search output has."""
    return arch_path.with_name(f"{arch_path.stem}.eval.json")


def check_writable(path: Path, force: bool = False) -> None:
    """Refuse, before any training, to overwrite a file ``eenas evaluate`` did not write (unless ``force``)."""
    if force or not path.exists():
        return
    try:
        writer = json.loads(path.read_text()).get("written_by")
    except (OSError, ValueError, AttributeError):
        writer = None
    if writer != EVALUATE_WRITER:
        raise EenasError(f"--json: {path} exists and '{EVALUATE_WRITER}' did not write it "
                         "(choose another path, or pass --force to overwrite it)")


def save_evaluation(evaluation: Evaluation, path: Path, written_by: str = EVALUATE_WRITER) -> Path:
    """The evaluation as JSON; its arch names its hardware file as an arch file beside it would (arch_data)."""
    return write_json(path, {"written_by": written_by, **evaluation.to_json(),
                             "arch": arch_data(evaluation.arch, Path(path).parent)})
