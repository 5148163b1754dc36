"""The precision study: one arch at several (backbone, exits) bit-widths.

Quantization changes both sides of the trade-off: fewer bits make every stage cheaper but
also make exits less confident, so fewer samples leave early.  The study keeps the arch's
mount points, heads and thresholds fixed and changes only the bit-widths, so any change in
exit ratios comes from the precision alone.  Thresholds are the arch's for every precision
(chosen on validation by whoever wrote the arch); like ``eenas evaluate``, the tables
report the test split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eenas.arch import Arch, BackboneConfig, Precision, QuantConfig
from eenas.evaluate import Evaluation, evaluate_arch
from eenas.hardware import load_accelerator
from eenas.io import join
from eenas.models.registry import DEFAULT_BACKBONE
from eenas.report.figures import COLORS, ET_UNIT, label_bars, panels, save, style
from eenas.report.tables import markdown, write_csv, write_markdown
from eenas.train import Pipeline

log = logging.getLogger(__name__)

# (backbone bits, exit bits); weights and activations share the width, as in the search.
PRECISION_GRID: tuple[tuple[int, int], ...] = ((32, 32), (8, 8), (8, 4), (4, 8), (4, 4))


def with_bits(arch: Arch, backbone_bits: int, exit_bits: int) -> Arch:
    return replace(arch, quant=QuantConfig(Precision(backbone_bits, backbone_bits), Precision(exit_bits, exit_bits)))


def backbone_text(config: BackboneConfig) -> str:
    """``MobileNetV2 width 0.5`` or ``paper_mbv2 (final_head pool4_fc_fc)``, for a study's notes."""
    if config.name == DEFAULT_BACKBONE:
        return f"MobileNetV2 width {config.width_mult:g}"
    options = ", ".join(f"{k} {v}" for k, v in config.option_items())
    return f"{config.name} ({options})" if options else config.name


def config_name(backbone_bits: int, exit_bits: int) -> str:
    return f"backbone {backbone_bits} / exits {exit_bits}"


def mean_exit_block(blocks: list[int], ratios: Sequence[float], arch: Arch) -> float:
    """Where samples leave on average: a mount point; the final classifier (unless the network ends before it)
    counts as the spec's ``final_block`` (MobileNetV2: 18)."""
    return float(np.dot(ratios, [*blocks] if arch.ends_at_exit else [*blocks, final_block(arch)]))


def final_block(arch: Arch) -> int:
    return arch.backbone.spec(arch.num_classes).final_block


@dataclass(frozen=True)
class PrecisionStudy:
    """One :class:`~eenas.evaluate.Evaluation` per (backbone, exit) bit-width pair."""

    arch: Arch
    bits: tuple[tuple[int, int], ...]
    evaluations: tuple[Evaluation, ...]

    def summary(self) -> pd.DataFrame:
        """One row per precision: accuracy, exit ratios, ET and the ET ratio."""
        rows = []
        for (bb, eb), ev in zip(self.bits, self.evaluations):
            s = ev.score
            rows.append({
                "config": config_name(bb, eb), "backbone_bits": bb, "exit_bits": eb,
                "accuracy": s.accuracy, "val_accuracy": ev.val_accuracy, "static_accuracy": s.static_accuracy,
                "accuracy_drop": s.accuracy_drop,
                "exit_ratios": join(s.exit_ratios), "exit_accuracy": join(ev.exits["exit_accuracy"]),
                "mean_exit_block": mean_exit_block([e.after_block for e in ev.arch.exits], s.exit_ratios, ev.arch),
                "average_cycles": s.average_latency, "average_energy_pj": s.average_energy,
                "average_et": s.average_et, "static_et": s.cost.static_et, "et_ratio": s.et_ratio,
            })
        return pd.DataFrame(rows)

    def exits(self) -> pd.DataFrame:
        """One row per (precision, exit): ``eenas evaluate``'s exit table with the bit-widths."""
        frames = []
        for (bb, eb), ev in zip(self.bits, self.evaluations):
            frame = ev.exits.copy()
            frame.insert(0, "exit", range(1, len(frame) + 1))
            frame.insert(0, "exit_bits", eb)
            frame.insert(0, "backbone_bits", bb)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


def run_precision_study(arch: Arch, pipeline: Pipeline, bits=PRECISION_GRID) -> PrecisionStudy:
    """Evaluate ``arch`` at every bit-width pair (training only what the caches lack)."""
    load_accelerator(arch.hardware)  # a bad --hardware fails now, not after the training
    evaluations = []
    for bb, eb in tqdm(bits, desc="precisions", dynamic_ncols=True, disable=None):
        log.info("scoring %s", config_name(bb, eb))
        evaluations.append(evaluate_arch(with_bits(arch, bb, eb), pipeline))
    return PrecisionStudy(arch, tuple(bits), tuple(evaluations))


def plot_precision(study: PrecisionStudy, path: Path) -> Path:
    """(a) cumulative ET at each exit, marker area = share leaving there; (b) average ET per precision."""
    fig, (stages, averages) = panels(2, width=6.0, height=4.6)
    first = study.evaluations[0].exits
    labels = [f"exit {i + 1}\n(block {b})" if b != "final" else "final"
              for i, b in enumerate(first["after_block"])]
    x = np.arange(len(labels))
    for color, (bb, eb), ev in zip(COLORS, study.bits, study.evaluations):
        t = ev.exits
        stages.plot(x, t["cum_et"], color=color, lw=1.2, label=config_name(bb, eb))
        stages.scatter(x, t["cum_et"], s=20 + 400 * t["exit_ratio"], color=color, alpha=0.6, edgecolors="k", lw=0.5)
    stages.set_xticks(x, labels, fontsize=8)
    style(stages, "(a) cumulative ET per stage\n(marker area ∝ share of samples leaving there)",
          "exit (stage)", f"cumulative energy × latency ({ET_UNIT})", log_y=True)
    stages.legend(fontsize=7, loc="upper left")

    summary = study.summary()
    names = [f"{bb}/{eb}" for bb, eb in study.bits]
    xs = np.arange(len(names))
    averages.bar(xs, summary["static_et"], width=0.7, fill=False, edgecolor="0.4", ls="--", label="static backbone")
    bars = averages.bar(xs, summary["average_et"], width=0.5, color=COLORS[: len(names)], label="early-exit network")
    label_bars(averages, bars, [f"ET ratio {r:.3g}\nacc {100 * a:.1f}%"
                                for r, a in zip(summary["et_ratio"], summary["accuracy"])])
    averages.set_xticks(xs, names)
    style(averages, "(b) average ET per configuration (test split)", "bit-width: backbone / exits",
          f"average energy × latency ({ET_UNIT})", log_y=True)
    averages.set_ylim(top=averages.get_ylim()[1] * 3)
    averages.legend(fontsize=7, loc="upper right")
    return save(fig, path)


def write_precision_study(study: PrecisionStudy, out: Path) -> list[Path]:
    """``precision.csv``, ``precision_exits.csv``, ``precision.md`` and ``precision.png`` in ``out``."""
    summary, exits = study.summary(), study.exits()
    exits_desc = ", ".join(f"block {e.after_block} ({e.head}, threshold {e.threshold:g})" for e in study.arch.exits)
    notes = (f"Arch: {study.arch.dataset}, {backbone_text(study.arch.backbone)}, exits after "
             f"{exits_desc or 'none'}; hardware {study.arch.hardware}.\n\nEvery precision uses the arch's "
             "thresholds; accuracy and exit ratios are on the test split (val_accuracy on validation). "
             f"ET is energy (pJ) × latency (cycles); mean_exit_block counts the final classifier as "
             f"{final_block(study.arch)}; accuracy_drop is in points against the static backbone at the same "
             "precision.")
    paths = [write_csv(out, "precision", summary), write_csv(out, "precision_exits", exits),
             plot_precision(study, out / "precision.png")]
    paths.append(write_markdown(out / "precision.md", "Precision study", [
        ("Settings", notes),
        ("Per precision", markdown(summary)),
        ("Per exit", markdown(exits)),
        ("Figure", "![precision study](precision.png)"),
    ]))
    return paths
