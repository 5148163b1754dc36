"""Whole-network schedule and early-exit accounting."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from eenas.arch import Arch, BackboneConfig, ExitConfig, Precision, QuantConfig
from eenas.errors import EenasError
from eenas.hardware import ConvLayer, PoolLayer, cost_arch, layer_cost, load_accelerator, network_cost
from eenas.hardware.layer_cost import channel_tile_bits
from eenas.hardware.workload import TAIL, backbone, exit_head
from eenas.models.spec import HEADS, INPUT_CHANNELS, INPUT_SIZE, NUM_BLOCKS, mobilenet_v2_spec

DATA = Path(__file__).parent / "data"

W8 = Precision(8, 8)
EXITS = (
    ExitConfig(2, "pool_fc", 0.9),
    ExitConfig(5, "conv_pool_fc", 0.9),
    ExitConfig(9, "dsconv_pool_fc", 0.9),
    ExitConfig(13, "gap_fc", 0.9),
)


def arch(exits=EXITS, width=1.0, backbone_bits=W8, exit_bits=W8, hardware="edge_tpu_quad") -> Arch:
    return Arch("cifar10", BackboneConfig("mobilenet_v2", width), tuple(exits), QuantConfig(backbone_bits, exit_bits),
                hardware)


def test_workload_follows_the_spec():
    spec = mobilenet_v2_spec(1.0)
    blocks = backbone(1.0, W8, 10)
    assert len(blocks) == NUM_BLOCKS + 2 and blocks[TAIL].index == TAIL
    for b in spec.blocks:
        names = [n.name.split(".")[1] for n in blocks[b.index].nodes]
        expected = (["expand"] if b.expand_ratio != 1 else []) + ["dw", "project"] + (["add"] if b.residual else [])
        assert names == expected
        dw = blocks[b.index].nodes[-3 if b.residual else -2].layer
        assert dw.kind == "depthwise" and dw.stride == b.stride and dw.height == b.in_size
        assert (blocks[b.index].channels, blocks[b.index].size) == (b.out_channels, b.out_size)
    tail = [n.layer for n in blocks[TAIL].nodes]
    assert tail[0] == ConvLayer(320, 1280, 2, 2) and tail[1] == PoolLayer(1280, 2, 2, 2, 2, "avg")
    assert tail[2] == ConvLayer(1280, 10, 1, 1)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_heads_follow_their_spec(head):
    spec, block = HEADS[head], backbone(1.0, W8, 100)[4]  # 32 channels at 8x8
    nodes = exit_head(block, head, Precision(4, 4), 100)
    kinds = [n.layer.kind for n in nodes]
    expected = (["depthwise"] if spec.depthwise else []) + (["pointwise"] if spec.conv_channels else [])
    assert kinds == expected + ["pool", "fc"]
    fc = nodes[-1].layer
    assert fc.in_channels == spec.fc_in_features(block.channels, block.size) and fc.out_channels == 100
    assert all(n.weight_bits == 4 for n in nodes)
    # Each layer reads what the previous one wrote: the head's first layer the backbone's 8-bit
    # output; max pooling keeps its input's 8 bits (no quantizer), average pooling requantizes.
    assert nodes[0].input_bits == 8
    for prev, node in zip(nodes, nodes[1:]):
        assert node.input_bits == prev.act_bits
    pool = nodes[-2]
    assert pool.act_bits == (pool.input_bits if spec.pool == "max" else 4)
    assert all(n.act_bits == 4 for n in nodes if n.layer.kind != "pool")


def test_the_image_is_read_at_8_bits():
    torch = pytest.importorskip("torch")  # noqa: F841 - eenas.quant needs it
    from eenas.quant.convert import INPUT_BITS

    image = INPUT_CHANNELS * INPUT_SIZE**2
    for bits, expected in ((2, INPUT_BITS), (4, INPUT_BITS), (8, INPUT_BITS), (32, 32)):
        stem = backbone(0.5, Precision(bits, bits), 10)[0].nodes[0]
        assert (stem.input_bits, stem.act_bits) == (expected, bits)
        nc = network_cost(arch(exits=(), width=0.5, backbone_bits=Precision(bits, bits)), allocation="greedy")
        # The stem's transfer is the image's DRAM read (1000 pJ per 64 bit) and act-SRAM write, then
        # its weight fetch: 3 x 32 x 32 x 8 bit = 24,576 bit = 384 DRAM accesses at 8 bits.
        stem_params = stem.param_bits
        acc = load_accelerator("edge_tpu_quad")
        sram, dram = acc.cores[0].design, acc.dram
        fetch = dram.read_energy(stem_params) + sram.weight_sram.write_energy(stem_params)
        moved = dram.read_energy(image * expected) + sram.act_sram.write_energy(image * expected)
        (record,) = [r for r in nc.layers if r.name == "stem"]
        assert record.transfer_pj == pytest.approx(moved + fetch)
    assert dram.read_energy(image * 8) == 384_000


def test_every_parameter_bit_is_fetched():
    # Single core, so the only transfers are fetches (and the image, and the pooling core's traffic).
    # A 1x1 24 -> 144 expansion at w8: 3,456 weights * 8 + 144 * (32-bit bias + 32-bit scale) = 36,864 bit.
    nc = network_cost(arch(exits=(), width=1.0, hardware="edge_tpu_single"), allocation="greedy")
    (b3,) = [r for r in nc.layers if r.name == "b3.expand"]
    assert b3.params == "fetched"
    assert b3.transfer_pj == pytest.approx(36_864 / 64 * 1000 + 36_864 / 512 * 52.01)
    blocks = backbone(1.0, W8, 10)
    for node in (n for b in blocks for n in b.nodes if isinstance(n.layer, ConvLayer)):
        layer = node.layer
        assert node.param_bits == layer.weight_count * 8 + layer.out_channels * 64
    assert backbone(1.0, Precision(32, 32), 10)[0].nodes[0].param_bits == 3 * 3 * 3 * 32 * 32 + 32 * 32


def test_an_addition_reads_a_pooled_copy_from_the_pooling_sram():
    """Regression: a pooling-first head copies the block output to the pooling core, and the next
    block's residual addition may read that copy.  It is read from the pooling SRAM (the single
    core once crashed on it, the quad charged another core's SRAM)."""
    # After block 2 (24 x 16 x 16, 49,152 bit at w8), gap_fc pools on the pooling core; b3.add reads
    # b3.project's output on its core (49,152 / 2048 = 24 accesses * 416.16 = 9,987.84 pJ) and the
    # block-2 output from the pooling SRAM (768 words of 64 bit = 85.33 accesses of 576 bit * 60 =
    # 5,120 pJ), cheaper than the compute core's copy that is ready as early; it writes the sum beside
    # the first operand (24 * 378.4 = 9,081.6 pJ).
    for hardware in ("edge_tpu_single", "edge_tpu_quad"):
        nc = network_cost(arch(exits=(ExitConfig(2, "gap_fc", 0.9),), hardware=hardware), allocation="greedy")
        (add,) = [r for r in nc.layers if r.name == "b3.add"]
        assert add.location == "simd"
        assert add.transfer_pj == pytest.approx(9_987.84 + 5_120 + 9_081.6), hardware


def test_resident_weights_stay_from_the_first_layer_on():
    """Resident mode: each layer, in execution order, keeps its parameters in its core's weight SRAM
    if they fit what earlier layers left (less the reserve); those are never fetched again."""
    acc = load_accelerator("edge_tpu_single").with_weights("resident")
    a = arch(exits=(ExitConfig(3, "conv_pool_fc", 0.9),), width=0.5, hardware="edge_tpu_single")
    streamed = network_cost(a, weights="streamed", allocation="greedy")
    resident = network_cost(a, weights="resident", allocation="greedy")
    assert (streamed.weights, resident.weights) == ("streamed", "resident")
    blocks = backbone(0.5, W8, 10)
    nodes = {n.name: n for b in blocks for n in b.nodes}
    nodes |= {n.name: n for n in exit_head(blocks[3], "conv_pool_fc", W8, 10)}
    reserve = max(channel_tile_bits(n.layer, acc.cores[0].design.mac_array, 8) for b in blocks for n in b.nodes
                  if isinstance(n.layer, ConvLayer))
    free, expected = acc.cores[0].design.weight_sram.size_bits, []
    for r in resident.layers:  # execution order: the head's layers come after block 3
        if r.kind in ("pool", "add"):
            continue
        bits = nodes[r.name].param_bits
        if bits <= free - reserve:
            free -= bits
            expected.append(r.name)
    assert [r.name for r in resident.layers if r.params == "resident"] == expected
    assert "b3.exit.pw" in expected and "stem" in expected and len(expected) < len(nodes)
    # Resident layers save exactly their fetch; the rest is unchanged (single core: no mesh).
    saved = sum(r.transfer_pj for r in streamed.layers if r.name in expected)
    saved -= sum(r.transfer_pj for r in resident.layers if r.name in expected)
    for ours, theirs in zip(streamed.cost.exits, resident.cost.exits):
        assert ours.cum_energy_pj > theirs.cum_energy_pj
    assert streamed.cost.static_energy_pj - resident.cost.static_energy_pj > 0
    total = streamed.cost.exits[-1].cum_energy_pj - resident.cost.exits[-1].cum_energy_pj
    assert total == pytest.approx(saved)


@pytest.mark.parametrize("hardware", ["edge_tpu_single", "edge_tpu_quad"])
@pytest.mark.parametrize("bits", [8, 4])
def test_resident_weights_never_cost_more_energy(hardware, bits):
    for width in (0.5, 1.0):
        a = arch(exits=EXITS, width=width, backbone_bits=Precision(bits, bits), hardware=hardware)
        streamed, resident = (cost_arch(a, weights=w, allocation="greedy") for w in ("streamed", "resident"))
        assert resident.static_energy_pj < streamed.static_energy_pj
        if hardware == "edge_tpu_single":  # same mapping: every exit saves
            for s, r in zip(streamed.exits, resident.exits):
                assert r.cum_energy_pj < s.cum_energy_pj


def test_weight_mode_from_the_file_and_its_override(tmp_path):
    text = (DATA / "hw_dual.yaml").read_text()
    assert load_accelerator(DATA / "hw_dual.yaml").weights == "resident"
    (tmp_path / "hw.yaml").write_text(text.replace("weights: resident", "weights: streamed"))
    a = arch(exits=(), width=0.5, hardware=str(tmp_path / "hw.yaml"))
    as_file = cost_arch(a, allocation="greedy")
    assert as_file == cost_arch(a, weights="streamed", allocation="greedy")
    assert as_file != cost_arch(a, weights="resident", allocation="greedy")
    assert cost_arch(a, hardware=DATA / "hw_dual.yaml", allocation="greedy") == cost_arch(
        a, hardware=DATA / "hw_dual.yaml", weights="resident", allocation="greedy")
    with pytest.raises(EenasError, match="weights: 'pinned' is not one of streamed, resident"):
        cost_arch(a, weights="pinned")


def test_identity_pooling_is_left_out():
    last = backbone(1.0, W8, 10)[NUM_BLOCKS]  # 2x2 map: pool_fc's max-pool to 4x4 keeps it 2x2
    assert [n.layer.kind for n in exit_head(last, "pool_fc", W8, 10)] == ["fc"]


def test_workload_matches_the_torch_network():
    torch = pytest.importorskip("torch")
    from eenas.models.backbone import Backbone
    from eenas.models.heads import build_head

    def shapes(module, x):
        seen = []
        hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].shape))) for m in module.modules()
                 if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        with torch.no_grad():
            module.eval()(x)
        for h in hooks:
            h.remove()
        return [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.groups, s[-1])
                if isinstance(m, torch.nn.Conv2d) else (m.in_features, m.out_features, 1, 1, 1, 1) for m, s in seen]

    def ours(nodes):
        return [(n.layer.in_channels, n.layer.out_channels, n.layer.kernel, n.layer.stride, n.layer.groups,
                 n.layer.height) for n in nodes if isinstance(n.layer, ConvLayer)]

    width = 0.5
    net, blocks = Backbone(10, width), backbone(width, W8, 10)
    assert shapes(net, torch.zeros(1, 3, 32, 32)) == ours([n for b in blocks for n in b.nodes])
    for head, b in zip(sorted(HEADS), (1, 4, 9, 17)):
        block = blocks[b]
        module = build_head(head, block.channels, block.size, 10)
        x = torch.zeros(1, block.channels, block.size, block.size)
        assert shapes(module, x) == ours(exit_head(block, head, W8, 10)), head


def test_without_exits_the_final_exit_is_the_static_network():
    cost = cost_arch(arch(exits=()))
    (final,) = cost.exits
    assert final.head == "classifier" and final.after_block is None
    assert final.cum_latency_cycles == cost.static_latency_cycles
    assert final.cum_energy_pj == cost.static_energy_pj and final.cum_macs == cost.static_macs
    assert cost.et_ratio([1.0]) == pytest.approx(1.0)


def test_cumulative_costs_are_sums_of_stages_and_of_layers():
    nc = network_cost(arch())
    exits = nc.cost.exits
    assert len(exits) == len(EXITS) + 1
    for i, e in enumerate(exits):
        assert e.cum_latency_cycles == sum(x.stage_latency_cycles for x in exits[: i + 1])
        assert e.cum_energy_pj == pytest.approx(sum(x.stage_energy_pj for x in exits[: i + 1]))
        assert e.cum_macs == sum(x.stage_macs for x in exits[: i + 1])
        layers = [r for r in nc.layers if r.stage == i + 1]
        assert e.stage_energy_pj == pytest.approx(sum(r.energy_pj + r.transfer_pj for r in layers))
        assert e.stage_macs == sum(r.macs for r in layers)
    assert exits[-1].cum_macs == sum(r.macs for r in nc.layers)
    # Every exit's head is part of its stage, the stem part of stage 1.
    assert [r.stage for r in nc.layers if r.name == "stem"] == [1]
    for i, ex in enumerate(EXITS):
        assert {r.stage for r in nc.layers if r.name.startswith(f"b{ex.after_block}.exit.")} == {i + 1}


def test_exits_are_barriers_without_overlap():
    nc = network_cost(arch())
    for i, e in enumerate(nc.cost.exits[:-1]):
        later = [r.start for r in nc.layers if r.stage > i + 1]
        assert min(later) >= e.cum_latency_cycles
    final, cost = nc.cost.exits[-1], nc.cost
    assert final.cum_energy_pj > cost.static_energy_pj and final.cum_latency_cycles > cost.static_latency_cycles
    assert final.cum_macs > cost.static_macs


def test_a_network_that_ends_at_its_last_exit_costs_only_what_runs():
    """``final``: up to that exit the schedule is the full network's; nothing after its head runs, fetches or keeps
    weights, and there is no classifier stage (its baseline stays the static backbone)."""
    ended = (*EXITS[:-1], replace(EXITS[-1], final=True))
    full, cut = network_cost(arch()), network_cost(arch(exits=ended), exit_ratios=[0.4, 0.3, 0.2, 0.1])
    assert cut.cost.exits == full.cost.exits[: len(EXITS)] and cut.cost.exits[-1].after_block == EXITS[-1].after_block
    assert list(cut.layers) == [r for r in full.layers if r.stage <= len(EXITS)]
    assert not any(r.name.startswith(("b14.", "b17.", "final.")) for r in cut.layers)
    assert cut.cost.exits[-1].cum_macs == sum(r.macs for r in cut.layers) < full.cost.static_macs
    assert cut.cost.static_et == full.cost.static_et
    resident = network_cost(arch(exits=ended), weights="resident", allocation="greedy")
    assert {r.name for r in resident.layers if r.params == "resident"} <= {r.name for r in cut.layers}
    overlapped = cost_arch(arch(exits=(*EXITS[:-1], replace(EXITS[-1], overlap=True, final=True))))
    assert overlapped.exits[-1].wasted_energy_pj == 0  # a final exit has no next stage to overlap
    with pytest.raises(EenasError, match="expected 4 values"):
        network_cost(arch(exits=ended), exit_ratios=[0.2] * 5)
    with pytest.raises(EenasError, match=r"exits\[0\]\.final: only the deepest exit"):  # Arch refuses it
        cost_arch(arch(exits=(replace(EXITS[0], final=True), *EXITS[1:])))


def test_average_et():
    cost = cost_arch(arch())
    first = cost.exits[0]
    assert cost.average_et([1, 0, 0, 0, 0]) == pytest.approx(first.cum_energy_pj * first.cum_latency_cycles)
    ratios = [0.3, 0.2, 0.2, 0.1, 0.2]
    assert cost.average_et(ratios) == pytest.approx(sum(r * e.cum_et for r, e in zip(ratios, cost.exits)))
    energy = sum(r * e.cum_energy_pj for r, e in zip(ratios, cost.exits))
    latency = sum(r * e.cum_latency_cycles for r, e in zip(ratios, cost.exits))
    assert cost.product_of_averages_et(ratios) == pytest.approx(energy * latency)
    assert cost.et_ratio(ratios) == pytest.approx(cost.average_et(ratios) / cost.static_et)
    assert 0 < cost.et_ratio(ratios) < 1  # early exits pay off at 8 bits


@pytest.mark.parametrize("ratios, message", [
    ([0.5, 0.5], "expected 5 values"),
    ([0.5, 0.5, 0.5, -0.5, 0.0], "non-negative"),
    ([0.2, 0.2, 0.2, 0.2, 0.1], "sum to 0.9"),
])
def test_bad_exit_ratios(ratios, message):
    with pytest.raises(EenasError, match=message):
        cost_arch(arch()).average_et(ratios)


def test_overlap_trades_energy_for_latency():
    plain = cost_arch(arch())
    exits = tuple(replace(e, overlap=True) for e in EXITS)
    overlapped = cost_arch(arch(exits=exits))
    assert overlapped.exits[-1].cum_latency_cycles < plain.exits[-1].cum_latency_cycles
    for fast, slow in zip(overlapped.exits[:-1], plain.exits[:-1]):
        assert fast.wasted_energy_pj > 0 and slow.wasted_energy_pj == 0
        assert fast.cum_energy_pj >= slow.cum_energy_pj
    # Decisions come in order: a sample reaches exit i+1 only after exit i said "continue".
    latencies = [e.cum_latency_cycles for e in overlapped.exits]
    assert latencies == sorted(latencies)
    nc = network_cost(arch(exits=exits))
    assert nc.overlap_saved_cycles == plain.exits[-1].cum_latency_cycles - overlapped.exits[-1].cum_latency_cycles


def test_exit_core_pins_the_head():
    exits = (ExitConfig(3, "dsconv_pool_fc", 0.9, core=2),)
    nc = network_cost(arch(exits=exits))
    heads = [r for r in nc.layers if r.name.startswith("b3.exit.")]
    assert {r.location for r in heads if r.kind != "pool"} == {"tpu2"}
    assert [r.location for r in heads if r.kind == "pool"] == ["pool"]
    with pytest.raises(EenasError, match=r"exits\[0\]\.core: 4 is not a compute core"):
        cost_arch(arch(exits=(ExitConfig(3, "pool_fc", 0.9, core=4),)))
    with pytest.raises(EenasError, match=r"exits\[0\]\.core: 1 is not a compute core of edge_tpu_single"):
        cost_arch(arch(exits=(ExitConfig(3, "pool_fc", 0.9, core=1),), hardware="edge_tpu_single"))


def test_layers_go_where_the_issue_says():
    nc = network_cost(arch())
    for r in nc.layers:
        expected = {"pool": {"pool"}, "add": {"simd"}}.get(r.kind, {"tpu0", "tpu1", "tpu2", "tpu3"})
        assert r.location in expected, r


def test_precision_and_width_lower_the_cost():
    def static(**kw):
        c = cost_arch(arch(exits=(), **kw))
        return c.static_energy_pj, c.static_latency_cycles

    e8, t8 = static()
    e4, t4 = static(backbone_bits=Precision(4, 4))
    ef, tf = static(backbone_bits=Precision(32, 32))
    assert e4 < e8 < ef and t4 <= t8 <= tf
    e_half, t_half = static(width=0.5)
    assert e_half < e8 and t_half < t8
    heads8 = cost_arch(arch()).exits[0].cum_energy_pj
    heads2 = cost_arch(arch(exit_bits=Precision(2, 2))).exits[0].cum_energy_pj
    assert heads2 < heads8


def test_hardware_argument_overrides_the_arch():
    a = arch(exits=())
    assert cost_arch(a, "edge_tpu_single").static_latency_cycles == cost_arch(
        arch(exits=(), hardware="edge_tpu_single")).static_latency_cycles
    assert network_cost(a, "edge_tpu_single").hardware == "edge_tpu_single"


def test_bad_exits_are_named():
    with pytest.raises(EenasError, match=r"exits: duplicate mount point after_block=5"):
        cost_arch(arch(exits=(ExitConfig(5, "pool_fc", 0.9), ExitConfig(5, "gap_fc", 0.9))))
    with pytest.raises(EenasError, match=r"exits\[0\]\.head: unknown head 'mlp'"):
        cost_arch(arch(exits=(ExitConfig(5, "mlp", 0.9),)))


def test_a_layer_whose_activations_spill_still_fetches_its_weights(tmp_path):
    """With a 512 kbit activation SRAM the first blocks' activations spill to DRAM; their (small)
    parameters must still be fetched and charged (they once were free)."""
    text = (Path(__file__).parents[1] / "eenas/hardware/presets/edge_tpu_single.yaml").read_text()
    (tmp_path / "small.yaml").write_text(text.replace("size_bits: 16777216", "size_bits: 524288"))
    acc = load_accelerator(tmp_path / "small.yaml")
    nc = network_cost(arch(exits=(), width=1.0, hardware=str(tmp_path / "small.yaml")), allocation="greedy")
    nodes = {n.name: n for b in backbone(1.0, W8, 10) for n in b.nodes}

    def spills(name: str) -> bool:
        node = nodes[name]
        return layer_cost(node.layer, acc, 0, 8, 8, dram=True, input_bits=node.input_bits).breakdown["I.dram"] > 0

    spilled = [r for r in nc.layers if r.kind not in ("add", "pool") and spills(r.name)]
    assert len(spilled) >= 3
    dram, wsram = acc.dram, acc.cores[0].design.weight_sram
    for r in spilled:
        bits = nodes[r.name].param_bits
        assert r.params == "fetched" and r.transfer_pj >= dram.read_energy(bits) + wsram.write_energy(bits)
