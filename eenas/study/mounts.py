"""The mount-point study: a family of networks with identical exit heads in different places.

Where an exit sits changes two things at once: how many samples it can send out (deeper
features are more confident) and what it costs, because a stage's tensor shapes decide how
well they fill the 8x8x4x4 MAC array.  Keeping the head type, threshold and bit-widths
fixed isolates the placement.  Each head is trained once per mount point; after that every
placement scores exactly from cached logits and the cost model, so all C(17, 4) = 2380
four-exit placements take seconds.

Every placement is scored, ranked and chosen on the validation split; the test split is
reported only for the chosen placements (the lowest, median and highest ET ratio), so no
choice ever sees a test label.

Utilisation of a group of layers (a block, a head, a stage) is the MAC-weighted one:
MACs / (array size x temporal cycles) summed over the layers that run on the MAC array,
i.e. the fraction of MAC slots the group keeps busy.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eenas.arch import BITWIDTHS, DATASET_CLASSES, Arch, BackboneConfig, ExitConfig, Precision, QuantConfig
from eenas.errors import EenasError
from eenas.hardware import LayerRecord, NetworkCost, load_accelerator, network_cost
from eenas.hardware.accelerator import DEFAULT_HARDWARE
from eenas.hardware.layers import ConvLayer, PoolLayer
from eenas.hardware.workload import Block, Node, exit_head, network_blocks
from eenas.io import join, write_json
from eenas.models.registry import DEFAULT_BACKBONE, get_backbone
from eenas.models.spec import NetworkSpec
from eenas.report.figures import COLORS, save, style, two_over_one
from eenas.report.tables import markdown, write_csv, write_markdown
from eenas.scoring import ExitStats, route, score
from eenas.study.precision import backbone_text, mean_exit_block
from eenas.train import Pipeline

log = logging.getLogger(__name__)
SHOWN_PLACEMENTS = 10  # rows of each end of the placement table in the markdown
SPLITS = ("val", "test")


@dataclass(frozen=True)
class MountSettings:
    """What the family shares; only the mount points differ between its members."""

    dataset: str
    width_mult: float
    n_exits: int = 4
    head: str = "pool_fc"
    threshold: float = 0.9
    backbone_bits: int = 8
    exit_bits: int = 8
    hardware: str = DEFAULT_HARDWARE
    samples: int | None = None  # None: every placement
    seed: int = 0  # of the sample (not of training)
    split: str = "test"  # what the chosen placements' table shows (choices are always on validation)
    backbone: str = DEFAULT_BACKBONE  # a registered family at its default options (width: width_mult)

    def __post_init__(self) -> None:
        mounts, heads = self.spec.mounts, get_backbone(self.backbone, "--backbone").heads
        checks = [
            (1 <= self.n_exits <= len(mounts), f"--exits {self.n_exits} must be between 1 and {len(mounts)}"),
            (self.head in heads, f"--head: unknown head '{self.head}' (known: {', '.join(heads)})"),
            (0 < self.threshold <= 1, f"--threshold {self.threshold} is outside (0, 1]"),
            (self.backbone_bits in BITWIDTHS, f"--backbone-bits {self.backbone_bits} is not one of {list(BITWIDTHS)}"),
            (self.exit_bits in BITWIDTHS, f"--exit-bits {self.exit_bits} is not one of {list(BITWIDTHS)}"),
            (self.samples is None or self.samples >= 1, f"--samples must be at least 1 (got {self.samples})"),
            (self.split in SPLITS, f"--split {self.split} is not one of {', '.join(SPLITS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise EenasError(message)
        load_accelerator(self.hardware)  # a bad --hardware fails now, not after the training

    @property
    def backbone_config(self) -> BackboneConfig:
        return BackboneConfig(get_backbone(self.backbone, "--backbone").name, self.width_mult)

    @property
    def spec(self) -> NetworkSpec:
        return self.backbone_config.spec(DATASET_CLASSES[self.dataset])

    @property
    def quant(self) -> QuantConfig:
        return QuantConfig(Precision(self.backbone_bits, self.backbone_bits), Precision(self.exit_bits, self.exit_bits))

    def arch(self, mounts: tuple[int, ...]) -> Arch:
        exits = tuple(ExitConfig(m, self.head, self.threshold) for m in mounts)
        return Arch(self.dataset, self.backbone_config, exits, self.quant, self.hardware)

    def placements(self) -> list[tuple[int, ...]]:
        """Every placement of ``n_exits`` exits, or a seeded sample of ``samples`` of them."""
        every = list(itertools.combinations(self.spec.mounts, self.n_exits))
        if self.samples is None or self.samples >= len(every):
            return every
        picked = np.random.default_rng(self.seed).choice(len(every), self.samples, replace=False)
        return [every[i] for i in sorted(picked)]


def utilization(records: list[LayerRecord]) -> float:
    """MAC-weighted utilisation of the MAC-array layers among ``records`` (NaN if none)."""
    array = [r for r in records if r.macs > 0]
    slots = sum(r.macs / r.utilization for r in array)
    return sum(r.macs for r in array) / slots if slots else math.nan


@dataclass(frozen=True)
class _Place:
    """Where a scheduled layer sits in the workload: its block (mount-point numbering; the stem is the one
    before the first mount point, the final exit's layers the spec's ``final_block``) and part."""

    block: int
    part: str  # "backbone" or "head" (a head's layers belong to the block it reads)


def _places(blocks: tuple[Block, ...], heads: dict[int, tuple[Node, ...]], offset: int) -> dict[str, _Place]:
    """Every layer's place, from the workload's blocks and heads (``heads``: mount point -> its head's nodes;
    ``blocks[m + offset]`` is mount point m's)."""
    places = {n.name: _Place(i - offset, "backbone") for i, b in enumerate(blocks) for n in b.nodes}
    places.update({n.name: _Place(m, "head") for m, nodes in heads.items() for n in nodes})
    return places


def _shape(layer) -> str:
    if isinstance(layer, ConvLayer):
        groups = f" g{layer.groups}" if layer.groups > 1 else ""
        return (f"{layer.in_channels}→{layer.out_channels} k{layer.kernel}/s{layer.stride}{groups} "
                f"@{layer.height}×{layer.width}")
    if isinstance(layer, PoolLayer):
        return f"{layer.channels} {layer.mode} k{layer.kernel} @{layer.height}×{layer.width}"
    return f"{layer.channels} @{layer.height}×{layer.width}"


@dataclass(frozen=True)
class MountStudy:
    settings: MountSettings
    placements: pd.DataFrame  # one row per placement (validation), lowest ET ratio first
    chosen: pd.DataFrame  # the lowest, median and highest ET-ratio placements, on settings.split
    mount_points: pd.DataFrame  # one row per mount point: shapes, utilisation, the head alone
    layers: pd.DataFrame  # one row per layer of the backbone and of every head


class _Scorer:
    """Routes and costs placements from one table of per-mount exit statistics."""

    def __init__(self, settings: MountSettings, pipeline: Pipeline, mounts: list[int]) -> None:
        self.settings, self.mounts = settings, mounts
        q = settings.quant
        logits = [pipeline.exit_logits(q.backbone, m, settings.head, q.exits)
                  for m in tqdm(mounts, desc="exit heads", dynamic_ncols=True, disable=None)]
        logits.append(pipeline.final_logits(q.backbone))
        labels = pipeline.labels()
        self.stats = {split: ExitStats.from_logits([getattr(lg, split) for lg in logits], getattr(labels, split))
                      for split in SPLITS}
        self.row = {m: i for i, m in enumerate(mounts)}

    def placement(self, mounts: tuple[int, ...], split: str = "val") -> dict:
        s = self.settings
        outcome = route(self.stats[split].select([self.row[m] for m in mounts]), [s.threshold] * len(mounts))
        arch = s.arch(mounts)
        nc = network_cost(arch, None, outcome.exit_ratios)
        cost, scored = nc.cost, score(outcome, nc.cost)
        ratios = scored.exit_ratios
        stages = [[r for r in nc.layers if r.stage == i] for i in range(1, len(cost.exits) + 1)]
        return {
            "mounts": "-".join(map(str, mounts)), "accuracy": scored.accuracy, "exit_ratios": join(ratios),
            "early_share": 1.0 - ratios[-1], "mean_exit_block": mean_exit_block(list(mounts), ratios, arch),
            "average_cycles": scored.average_latency, "average_energy_pj": scored.average_energy,
            "average_et": scored.average_et, "static_et": cost.static_et, "et_ratio": scored.et_ratio,
            "stage_utilization": join(utilization(st) for st in stages),
            "stage_cycles": join(e.stage_latency_cycles for e in cost.exits),
            "cum_cycles": join(e.cum_latency_cycles for e in cost.exits),
            "cum_energy_pj": join(e.cum_energy_pj for e in cost.exits),
        }

    def mount_point(self, m: int, block: Block, records: list[LayerRecord], places: dict[str, _Place]) -> dict:
        body = [r for r in records if places[r.name] == _Place(m, "backbone")]
        head = [r for r in records if places[r.name] == _Place(m, "head")]
        i = self.row[m]
        return {
            "block": m, "output_shape": f"{block.channels}×{block.size}×{block.size}",
            "block_utilization": utilization(body), "block_cycles": sum(r.cycles for r in body),
            "head_utilization": utilization(head), "head_cycles": sum(r.cycles for r in head),
            "head_energy_pj": sum(r.energy_pj + r.transfer_pj for r in head),
            "head_accuracy": float(self.stats["val"].correct[i].mean()),
            "confident_share": float((self.stats["val"].confidence[i] >= self.settings.threshold).mean()),
        }


def _layer_table(nc: NetworkCost, blocks: tuple[Block, ...], heads: dict[int, tuple[Node, ...]],
                 places: dict[str, _Place]) -> pd.DataFrame:
    nodes = [n for b in blocks for n in b.nodes] + [n for nodes in heads.values() for n in nodes]
    shapes = {n.name: _shape(n.layer) for n in nodes}
    return pd.DataFrame([{
        "layer": r.name, "part": places[r.name].part, "block": places[r.name].block,
        "kind": r.kind, "shape": shapes[r.name], "macs": r.macs, "utilization": r.utilization,
        "cycles": r.cycles, "energy_pj": r.energy_pj + r.transfer_pj,
    } for r in nc.layers])


def run_mount_study(settings: MountSettings, pipeline: Pipeline) -> MountStudy:
    """Train (or load) one head per mount point, score and rank every placement on validation, then
    report the chosen ones on ``settings.split``."""
    places = settings.placements()
    mounts = sorted(set(itertools.chain.from_iterable(places)))
    log.info("%d placements of %d %s exits over %d mount points", len(places), settings.n_exits, settings.head,
             len(mounts))
    scorer = _Scorer(settings, pipeline, mounts)
    rows = [scorer.placement(p) for p in tqdm(places, desc="placements", dynamic_ncols=True, disable=None)]
    table = pd.DataFrame(rows).sort_values(["et_ratio", "mounts"], kind="stable", ignore_index=True)
    chosen = pd.DataFrame([{"choice": label, "rank": row + 1,
                            **scorer.placement(tuple(int(m) for m in placement.split("-")), settings.split)}
                           for label, row, placement in _representatives(table)])
    # One network with an exit at every mount point holds every layer the family uses.
    everything = network_cost(settings.arch(tuple(mounts)))
    spec, classes = settings.spec, settings.arch(()).num_classes
    blocks = network_blocks(spec, settings.quant.backbone)
    heads = {m: exit_head(blocks[m + spec.mount_offset], settings.head, settings.quant.exits, classes) for m in mounts}
    places = _places(blocks, heads, spec.mount_offset)
    points = pd.DataFrame([scorer.mount_point(m, blocks[m + spec.mount_offset], list(everything.layers), places)
                           for m in mounts])
    return MountStudy(settings, table, chosen, points, _layer_table(everything, blocks, heads, places))


def _representatives(table: pd.DataFrame) -> list[tuple[str, int, str]]:
    """(label, row, mounts) of the lowest, median and highest ET-ratio placements (``table`` is sorted by it).

    A placement that is several of these (a table of one or two rows) gets one entry, labels joined.
    """
    picks: dict[int, list[str]] = {}
    for row, label in ((0, "lowest"), (len(table) // 2, "median"), (len(table) - 1, "highest")):
        picks.setdefault(row, []).append(label)
    return [(" & ".join(labels) + " ET ratio", row, table["mounts"].iloc[row]) for row, labels in sorted(picks.items())]


def plot_mounts(study: MountStudy, path: Path) -> Path:
    """(a) ET ratio against the share leaving early; (b) utilisation per stage; (c) per mount point."""
    fig, (scatter, stages, points) = two_over_one()
    t = study.placements
    dots = scatter.scatter(100 * t["early_share"], t["et_ratio"], c=100 * t["accuracy"], cmap="viridis", s=10)
    fig.colorbar(dots, ax=scatter, label="validation accuracy (%)")
    best = t.iloc[0]
    scatter.scatter([100 * best["early_share"]], [best["et_ratio"]], marker="*", s=180, c="tab:red", edgecolors="k")
    scatter.annotate(f"lowest ET ratio: exits after {best['mounts']}", (100 * best["early_share"], best["et_ratio"]),
                     textcoords="offset points", xytext=(-10, 10), ha="right", fontsize=8)
    style(scatter, f"(a) {len(t)} placements of {study.settings.n_exits} {study.settings.head} exits",
          "samples leaving at an early exit (%)", "average ET / static backbone ET")

    p = study.mount_points
    x = np.arange(len(p))
    points.bar(x - 0.2, 100 * p["block_utilization"], width=0.4, label="backbone block", color=COLORS[0])
    points.bar(x + 0.2, 100 * p["head_utilization"], width=0.4, label=f"{study.settings.head} head", color=COLORS[1])
    points.set_xticks(x, [f"{b}\n{s}" for b, s in zip(p["block"], p["output_shape"])], fontsize=8)
    style(points, "(c) MAC-array utilisation per mount point (tick: block and its output, channels×H×W)",
          "mount point (block)", "utilisation (% of MAC slots busy)")
    points.set_ylim(0, 105)
    points.legend(fontsize=7)

    reps = t.iloc[[i for _, i, _ in _representatives(t)]]
    width = 0.8 / len(reps)
    for j, (color, (_, row)) in enumerate(zip(COLORS[2:], reps.iterrows())):
        util = [100 * float(v) for v in row["stage_utilization"].split(";")]
        xs = np.arange(1, len(util) + 1) + (j - (len(reps) - 1) / 2) * width
        stages.bar(xs, util, width=width, color=color, label=f"{row['mounts']} (ET ratio {row['et_ratio']:.3g})")
    stages.set_xticks(np.arange(1, study.settings.n_exits + 2),
                      [*(f"stage {i}" for i in range(1, study.settings.n_exits + 1)), "final"])
    style(stages, "(b) utilisation per stage: lowest, median and\nhighest ET-ratio placements",
          "stage (blocks since the previous exit + its head)", "utilisation (% of MAC slots busy)")
    stages.set_ylim(0, 105)
    stages.legend(fontsize=7, title="mount points", title_fontsize=7)
    return save(fig, path)


def write_mount_study(study: MountStudy, out: Path) -> list[Path]:
    """``mounts.csv``, ``mounts_chosen.csv``, ``mount_points.csv``, ``mount_layers.csv``, ``mounts.md``,
    ``mounts.png``, ``mounts.json``."""
    s, t = study.settings, study.placements
    split = {"val": "validation", "test": "test"}[s.split]
    notes = (f"{s.dataset}, {backbone_text(s.backbone_config)}, {s.n_exits} exits of type {s.head} at threshold "
             f"{s.threshold:g}, backbone {s.backbone_bits}-bit, exits {s.exit_bits}-bit, hardware {s.hardware}; "
             f"{len(t)} placements ({'every one' if s.samples is None else f'a sample of {s.samples}, seed {s.seed}'}"
             "). Every placement is scored, ranked and chosen on the validation split; the chosen placements' "
             f"table alone is on the {split} split. ET is energy (pJ) × latency (cycles); utilisation "
             "is the fraction of MAC slots a group of layers keeps busy (MACs / (array size × temporal cycles)); "
             f"mean_exit_block counts the final classifier as {s.spec.final_block}.")
    if len(t) <= 2 * SHOWN_PLACEMENTS:
        ends, ends_title = t, "Placements, lowest ET ratio first"
    else:
        ends = pd.concat([t.head(SHOWN_PLACEMENTS), t.tail(SHOWN_PLACEMENTS)])
        ends_title = f"The {SHOWN_PLACEMENTS} placements of lowest and highest ET ratio (all in mounts.csv)"
    paths = [
        write_json(out / "mounts.json", asdict(s)),
        write_csv(out, "mounts", t), write_csv(out, "mounts_chosen", study.chosen),
        write_csv(out, "mount_points", study.mount_points),
        write_csv(out, "mount_layers", study.layers), plot_mounts(study, out / "mounts.png"),
    ]
    paths.append(write_markdown(out / "mounts.md", "Mount-point study", [
        ("Settings", notes),
        ("Figure", "![mount-point study](mounts.png)"),
        (f"Chosen on validation, reported on the {split} split (rank: in the validation ranking)",
         markdown(study.chosen)),
        (f"{ends_title} (validation)", markdown(ends)),
        ("Per mount point (the head alone on validation: head_accuracy on every sample, confident_share above "
         "threshold)",
         markdown(study.mount_points)),
        ("Per layer (energy_pj: the layer's own energy plus moving its operands)", markdown(study.layers)),
    ]))
    return paths
