"""The head-bank report: every exit head of a search space, trained (or loaded) once, on one page.

A search scores networks from the cached logits of these heads, so one under-trained head shifts every front
that holds it.  The report shows at a glance whether the bank is sane: validation accuracy by mount and head
type per (backbone, exit) precision, its spread within each mount, the held-back accuracy each head reached
after its float and QAT stages, and which heads needed a retry or stayed dead (docs/studies.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eenas.arch import BITWIDTHS, Precision
from eenas.errors import EenasError
from eenas.models.registry import get_backbone
from eenas.report.figures import COLORS, panels, save, style
from eenas.report.tables import markdown, write_csv, write_markdown
from eenas.scoring import top1
from eenas.study.precision import backbone_text
from eenas.train import Pipeline
from eenas.train.loops import TrainingDiverged
from eenas.train.pipeline import LIVE_HEAD_CHANCE_FACTOR, head_schedules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadBankSettings:
    """The space whose heads the report trains: mounts x heads x backbone bits x exit bits."""

    backbone_bits: tuple[int, ...] = (8, 4)
    exit_bits: tuple[int, ...] = (8, 4)
    mounts: tuple[int, ...] = ()  # empty: every mount of the backbone
    heads: tuple[str, ...] = ()  # empty: every head of its family

    def resolve(self, pipeline: Pipeline) -> HeadBankSettings:
        """These settings with the backbone's mounts and heads filled in; a bad value is an :class:`EenasError`."""
        known_mounts, known_heads = pipeline.network.mounts, tuple(get_backbone(pipeline.cfg.backbone).heads)
        mounts, heads = self.mounts or known_mounts, self.heads or known_heads
        checks = [(f"--backbone-bits {b}", b in BITWIDTHS, f"is not one of {list(BITWIDTHS)}") for b in
                  self.backbone_bits]
        checks += [(f"--exit-bits {b}", b in BITWIDTHS, f"is not one of {list(BITWIDTHS)}") for b in self.exit_bits]
        checks += [(f"--mounts {m}", m in known_mounts, f"is not a mount ({', '.join(map(str, known_mounts))})")
                   for m in mounts]
        checks += [(f"--heads {h}", h in known_heads, f"is not a head ({', '.join(known_heads)})") for h in heads]
        for name, ok, why in checks:
            if not ok:
                raise EenasError(f"{name}: {why}")
        if not (self.backbone_bits and self.exit_bits):
            raise EenasError("--backbone-bits and --exit-bits: give at least one bit-width each")
        return HeadBankSettings(self.backbone_bits, self.exit_bits, tuple(mounts), tuple(heads))


def schedule_text(head: str, index: int) -> str:
    lr, warm_up = head_schedules(head)[index]
    return f"lr {lr:g}{' warm-up' if warm_up else ''}"


@dataclass(frozen=True)
class HeadBank:
    """One row per head: its validation accuracy and how its training went."""

    settings: HeadBankSettings
    num_classes: int
    heads: pd.DataFrame

    @property
    def chance(self) -> float:
        return 1 / self.num_classes

    def spread(self) -> pd.DataFrame:
        """Min, median and max validation accuracy of the heads within each (precision, mount)."""
        groups = self.heads.groupby(["backbone_bits", "exit_bits", "mount"], sort=False)
        frame = groups["val_accuracy"].agg(["count", "min", "median", "max"]).reset_index()
        frame = frame.rename(columns={"count": "live", "min": "val_min", "median": "val_median", "max": "val_max"})
        frame.insert(3, "heads", groups.size().to_numpy())
        frame["retried"] = groups["retries"].apply(lambda r: int((r > 0).sum())).to_numpy()
        return frame


def _row(pipeline: Pipeline, bb: int, eb: int, mount: int, head: str) -> dict:
    """A head's row; a dead one (:class:`~eenas.train.pipeline.HeadDead`, or diverged) gets its reason, no scores."""
    p_backbone, p_exit = Precision(bb, bb), Precision(eb, eb)
    row = {"mount": mount, "head": head, "backbone_bits": bb, "exit_bits": eb}
    try:
        logits = pipeline.exit_logits(p_backbone, mount, head, p_exit)
    except TrainingDiverged as exc:
        log.warning("head %s@%d (backbone %d, exits %d) failed: %s", head, mount, bb, eb, exc)
        return {**row, "val_accuracy": np.nan, "float_accuracy": np.nan, "qat_accuracy": np.nan,
                "schedule": "", "qat_retries": np.nan, "retries": np.nan, "status": f"dead: {exc}"}
    record = pipeline.head_training(p_backbone, mount, head, p_exit)
    return {**row, "val_accuracy": top1(logits.val, pipeline.splits.val.labels),
            "float_accuracy": record.float_accuracy,
            "qat_accuracy": np.nan if record.qat_accuracy is None else record.qat_accuracy,
            "schedule": schedule_text(head, record.schedule), "qat_retries": record.qat_retries,
            "retries": record.retries, "status": "retried" if record.retries else "ok"}


def run_head_bank(pipeline: Pipeline, settings: HeadBankSettings = HeadBankSettings()) -> HeadBank:
    """Train (or load) every head of the space, backbone precision by backbone precision."""
    settings = settings.resolve(pipeline)
    ids = [(bb, eb, m, h) for bb in settings.backbone_bits for eb in settings.exit_bits
           for m in settings.mounts for h in settings.heads]
    rows = [_row(pipeline, *head) for head in tqdm(ids, desc="heads", dynamic_ncols=True, disable=None)]
    return HeadBank(settings, pipeline.splits.num_classes, pd.DataFrame(rows))


def plot_head_bank(bank: HeadBank, path: Path) -> Path:
    """Validation accuracy against mount, one line per head type, one panel per (backbone, exit) precision;
    retried heads hollow, dead ones a cross at chance."""
    pairs = list(bank.heads.groupby(["backbone_bits", "exit_bits"], sort=False))
    fig, axes = panels(len(pairs), width=5.0, height=3.8, rows=1 if len(pairs) <= 2 else 2)
    top = np.nanmax([bank.heads["val_accuracy"].max(), LIVE_HEAD_CHANCE_FACTOR * bank.chance])
    for ax, ((bb, eb), frame) in zip(axes, pairs):
        for color, head in zip(COLORS, bank.settings.heads):
            rows = frame[frame["head"] == head]
            ax.plot(rows["mount"], rows["val_accuracy"], color=color, lw=1.2, marker="o", label=head)
            retried = rows[rows["retries"] > 0]
            ax.scatter(retried["mount"], retried["val_accuracy"], s=70, facecolors="white", edgecolors=color,
                       zorder=3)
            dead = rows[rows["val_accuracy"].isna()]
            ax.scatter(dead["mount"], [bank.chance] * len(dead), marker="x", s=60, color=color, zorder=3)
        ax.axhline(bank.chance, color="0.5", ls=":", lw=1, label="chance")
        ax.set_xticks(bank.settings.mounts)
        ax.set_ylim(0, min(1.02, top * 1.1))
        style(ax, f"backbone {bb} bits / exits {eb} bits", "mount (after block)", "validation top-1")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Head bank: validation top-1 by mount and head\n(hollow: retried, x: dead)", fontsize=10)
    return save(fig, path)


def write_head_bank(bank: HeadBank, out: Path, pipeline: Pipeline) -> list[Path]:
    """``heads.csv``, ``heads_spread.csv``, ``heads.md`` and ``heads.png`` in ``out``."""
    cfg, spread = pipeline.cfg, bank.spread()
    dead = int(bank.heads["val_accuracy"].isna().sum())
    retried = int((bank.heads["retries"] > 0).sum())
    notes = (f"{cfg.dataset}, budget {cfg.budget.name}, {backbone_text(cfg.backbone_config)}, seed {cfg.seed}; "
             f"{len(bank.heads)} heads: {len(bank.settings.mounts)} mounts x {len(bank.settings.heads)} heads x "
             f"backbone bits {', '.join(map(str, bank.settings.backbone_bits))} x exit bits "
             f"{', '.join(map(str, bank.settings.exit_bits))}; {retried} retried, {dead} dead.\n\n"
             "val_accuracy is top-1 on the validation split. float_accuracy and qat_accuracy are the eval-mode "
             "top-1 on the head's held-back training features after its float training and its QAT fine-tune "
             f"(the pipeline's checks: a head is live from {LIVE_HEAD_CHANCE_FACTOR:g}x chance, "
             f"{LIVE_HEAD_CHANCE_FACTOR * bank.chance:.3g}). schedule is the float schedule kept; retries counts "
             "the float schedules that ended dead before it plus a redone QAT fine-tune.")
    paths = [write_csv(out, "heads", bank.heads), write_csv(out, "heads_spread", spread),
             plot_head_bank(bank, out / "heads.png")]
    paths.append(write_markdown(out / "heads.md", "Head bank", [
        ("Settings", notes),
        ("Spread within each mount", markdown(spread)),
        ("Per head", markdown(bank.heads)),
        ("Figure", "![head bank](heads.png)"),
    ]))
    return paths

