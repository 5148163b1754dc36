"""Every head at every mount point, precision and weight mode costs without error on four accelerators.

The accelerators: the two presets, a 2-core mesh (tests/data/hw_dual.yaml) and three different
cores in a line (tests/data/hw_hetero.yaml).  Invariants checked on each arch: cumulative
values are sums of stages, nothing is negative, exits come in order, and the static baseline is
the final exit of the same arch without exits.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from eenas.arch import BITWIDTHS, Arch, BackboneConfig, ExitConfig, Precision, QuantConfig
from eenas.hardware import WEIGHT_MODES, ArchCost, cost_arch, load_accelerator, network_cost
from eenas.models.spec import HEADS, NUM_BLOCKS

DATA = Path(__file__).parent / "data"
ACCELERATORS = ["edge_tpu_quad", "edge_tpu_single", str(DATA / "hw_dual.yaml"), str(DATA / "hw_hetero.yaml")]


def _arch(hardware: str, exits: tuple[ExitConfig, ...], backbone_bits: int, exit_bits: int) -> Arch:
    quant = QuantConfig(Precision(backbone_bits, backbone_bits), Precision(exit_bits, exit_bits))
    return Arch("cifar10", BackboneConfig("mobilenet_v2", 0.5), exits, quant, hardware)


def _check(cost: ArchCost, static: ArchCost, where: object) -> None:
    exits = cost.exits
    for i, e in enumerate(exits):
        assert e.stage_latency_cycles >= 0 and e.stage_energy_pj >= 0 and e.stage_macs >= 0, where
        assert e.wasted_energy_pj >= 0 and (e.overlap or e.wasted_energy_pj == 0), where
        assert e.cum_latency_cycles == sum(x.stage_latency_cycles for x in exits[: i + 1]), where
        assert e.cum_energy_pj == pytest.approx(sum(x.stage_energy_pj for x in exits[: i + 1])), where
        assert e.cum_macs == sum(x.stage_macs for x in exits[: i + 1]), where
    assert exits[0].cum_latency_cycles > 0 and exits[0].cum_energy_pj > 0, where
    (final,) = static.exits
    assert (cost.static_latency_cycles, cost.static_energy_pj, cost.static_macs) == (
        final.cum_latency_cycles, final.cum_energy_pj, final.cum_macs), where
    assert exits[-1].cum_macs > cost.static_macs, where  # the heads' MACs come on top


@pytest.mark.parametrize("weights", WEIGHT_MODES)
@pytest.mark.parametrize("hardware", ACCELERATORS, ids=lambda h: Path(h).stem)
def test_every_head_at_every_mount_and_precision(hardware, weights):
    for backbone_bits, exit_bits in itertools.product(BITWIDTHS, repeat=2):
        static = cost_arch(_arch(hardware, (), backbone_bits, exit_bits), weights=weights, allocation="greedy")
        for mount, head, overlap in itertools.product(range(1, NUM_BLOCKS + 1), HEADS, (False, True)):
            exits = (ExitConfig(mount, head, 0.9, overlap=overlap),)
            cost = cost_arch(_arch(hardware, exits, backbone_bits, exit_bits), weights=weights, allocation="greedy")
            _check(cost, static, (backbone_bits, exit_bits, mount, head, overlap))


@pytest.mark.parametrize("hardware", ACCELERATORS, ids=lambda h: Path(h).stem)
def test_consecutive_pooling_heads_and_pinned_cores(hardware):
    """Two exits in a row whose heads pool first (their block outputs get copies on the pooling
    core, which the next residual addition may read), each head pinned to every core."""
    n_cores = len(load_accelerator(hardware).cores)
    for weights in WEIGHT_MODES:
        static = cost_arch(_arch(hardware, (), 8, 4), weights=weights, allocation="greedy")
        for mount, core, overlap in itertools.product(range(1, NUM_BLOCKS), range(n_cores), (False, True)):
            exits = (ExitConfig(mount, "gap_fc", 0.9, core, overlap),
                     ExitConfig(mount + 1, "pool_fc", 0.9, core, overlap))
            cost = cost_arch(_arch(hardware, exits, 8, 4), weights=weights, allocation="greedy")
            _check(cost, static, (weights, mount, core, overlap))


@pytest.mark.parametrize("hardware", ACCELERATORS, ids=lambda h: Path(h).stem)
def test_stages_are_sums_of_their_layers(hardware):
    exits = tuple(ExitConfig(m, h, 0.9) for m, h in zip((2, 5, 9, 13), sorted(HEADS)))
    nc = network_cost(_arch(hardware, exits, 4, 8), allocation="greedy")
    names = {c.name for c in load_accelerator(hardware).cores} | {"pool", "simd"}
    for i, e in enumerate(nc.cost.exits):
        layers = [r for r in nc.layers if r.stage == i + 1]
        assert e.stage_energy_pj == pytest.approx(sum(r.energy_pj + r.transfer_pj for r in layers))
        assert all(r.location in names and r.energy_pj >= 0 and r.transfer_pj >= 0 for r in layers)
