"""Torch-free description of ``paper_mbv2``: the 12-block MobileNetV2 of the reference work at 32x32.

Zniber et al. (arXiv:2512.04705); the facts come from the graphs its hardware side exports
(the ``expl-eenn`` branch of the ``asyms/stream`` fork of Stream).  Blocks are numbered 0..11
as there, and so are the arch file's mount points: an exit may follow blocks 0..9, and the
final exit follows block 11.  No final 1x1 conv and no global pooling: every exit, the final
one included, is one of the two heads below.
"""

from __future__ import annotations

from typing import Any

from eenas.models.registry import BackboneEntry, Option, register
from eenas.models.spec import BlockSpec, HeadSpec, NetworkSpec, UnitSpec, stem_unit

STEM_CHANNELS = 32
# Per block 0..11: output channels, expansion, stride, depthwise kernel.  Residual sums follow
# from stride 1 with equal channels: blocks 2, 4, 6, 8 and 10.
BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (16, 1, 1, 3),
    (24, 6, 1, 3), (24, 6, 1, 3),
    (32, 6, 1, 3), (32, 6, 1, 3),
    (64, 6, 2, 3), (64, 6, 1, 3),
    (96, 6, 1, 7), (96, 6, 1, 7),
    (160, 6, 2, 7), (160, 6, 1, 7),
    (320, 6, 1, 7),
)
MOUNTS = tuple(range(10))  # after blocks 0..9
DEFAULT_FINAL_HEAD = "pool4_fc_fc"

HEADS: dict[str, HeadSpec] = {
    spec.name: spec
    for spec in (
        HeadSpec("pool4_fc", "max", 4, summary="max-pool to 4x4, flatten, FC"),
        HeadSpec("pool4_fc_fc", "max", 4, hidden=True,
                 summary="max-pool to 4x4, flatten, FC to half the flattened width, ReLU6, FC"),
    )
}


def blocks() -> tuple[BlockSpec, ...]:
    out: list[BlockSpec] = []
    channels, size = STEM_CHANNELS, 32
    for index, (c, t, s, k) in enumerate(BLOCKS):
        out.append(BlockSpec(index, channels, c, t, s, size, k))
        channels, size = c, out[-1].out_size
    return tuple(out)


def paper_mbv2_spec(num_classes: int, final_head: str = DEFAULT_FINAL_HEAD) -> NetworkSpec:
    """Stem (unit 0), blocks 0..11 (units 1..12), then ``final_head`` on block 11's 320x8x8 output."""
    units: list[UnitSpec] = [stem_unit(STEM_CHANNELS, 1)]
    for b in blocks():
        units.append(b.unit(b.index + 1, units[-1].output))
    last = units[-1]
    classifier = HEADS[final_head].layers("final", last.output, last.channels, last.size, num_classes)
    return NetworkSpec(tuple(units), classifier, num_classes, MOUNTS, mount_offset=1)


def _final_head(value: Any) -> str | None:
    return None if value in HEADS else f"unknown head '{value}' (known: {', '.join(HEADS)})"


register(BackboneEntry(
    "paper_mbv2", "the reference work's 12-block MobileNetV2 (blocks 0..11, exits after 0..9)",
    paper_mbv2_spec, "eenas.models.paper_mbv2:paper_mbv2_backbone", HEADS,
    {"final_head": Option(DEFAULT_FINAL_HEAD, _final_head, "the final exit's head after block 11")},
))
