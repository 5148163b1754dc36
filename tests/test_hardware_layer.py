"""Per-layer cost model: the reference's worked example, hand-derived cases and invariants.

Notation in the derivations: unrolling (D1, D2, D3, D4) = (K, C, OX, OY) = (8, 8, 4, 4),
T = temporal cycles, "acc" = full-width accesses by the partial-access rule
ceil(bits / 64) * 64 / bw_max.  Weight SRAM 512 bit/cycle, 22.9 pJ read, 52.01 pJ write;
activation SRAM 2048 bit/cycle, 416.16 pJ read, 378.4 pJ write; weight RF 0.01 pJ,
output RF 0.02 pJ per access; MAC 0.04 pJ; DRAM 1000 pJ per 64 bits.  Every output channel
has a 32-bit bias and, with quantized weights, a 32-bit requantization scale (64 bits), read
from the weight SRAM once per output tile ("B.sram") and fetched with the weights.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from importlib import resources

import pytest
import yaml

from eenas.errors import EenasError
from eenas.hardware import AddLayer, ConvLayer, PoolLayer, layer_cost, load_accelerator

ACC = load_accelerator("edge_tpu_quad")


def close(actual: float, expected: float, rel: float = 1e-9) -> bool:
    return actual == pytest.approx(expected, rel=rel)


def test_worked_example_from_the_reference():
    c = layer_cost(ConvLayer(in_channels=32, out_channels=16, height=32, width=32, kernel=1, stride=1, groups=1),
                   ACC, core=0, weight_bits=8, act_bits=8, dram=False)
    assert c.macs == 524_288
    assert c.temporal_cycles == 512 and c.utilization == 1.0
    assert c.latency_cycles == pytest.approx(514, rel=0.01)
    assert c.latency_cycles == 514  # +1 loading, +1 draining
    # Every term of the reference (which has no biases) is reproduced, and so is its total.
    reference = {"mac": 20_972, "W.rf": 655, "W.sram": 11_725, "I.sram": 106_537, "O.rf": 2_949, "O.sram": 24_218}
    for term, pj in reference.items():
        assert c.breakdown[term] == pytest.approx(pj, rel=0.01), term
    assert sum(pj for term, pj in c.breakdown.items() if term != "B.sram") == pytest.approx(167_055, rel=0.01)
    # Biases and scales: 2 K tiles * 64 pixel tiles = 128 output tiles, each reading 8 channels * 64 bit
    # = 512 bit = 1 weight-SRAM access: 128 * 22.9 = 2,931.2 pJ.  Total 167,055.36 + 2,931.2.
    assert close(c.breakdown["B.sram"], 2_931.2)
    assert close(c.energy_pj, 169_986.56)
    assert sum(c.breakdown.values()) == pytest.approx(c.energy_pj)


def test_depthwise_unrolls_channels_on_d1():
    # 3x3 depthwise, 32 channels at 32x32, stride 1.  Groups on D1: D1=8 groups, D2=1, 4x4 pixels.
    # T = ceil(32/8)=4 group tiles * 9 kernel taps * 8*8 pixel tiles = 2304; 128 of 1024 MACs busy.
    # MACs = 32*32*32*9 = 294,912 -> 11,796.48 pJ.
    # W: 8 weights (64 bit) per cycle: RF 2304*8 writes + 2304*8 reads = 368.64 pJ;
    #    SRAM 2304 * 64/512 acc * 22.9 = 6,595.2 pJ.
    # I: 8 channels * 16 pixels = 1024 bit per cycle: 2304 * 0.5 acc * 416.16 = 479,416.32 pJ.
    # O: 128 psums per cycle read+written: 2304*128*2*0.02 = 11,796.48, drains 32,768*0.02 = 655.36;
    #    SRAM 256 output tiles * 0.5 acc * 378.4 = 48,435.2 pJ.
    # B: 256 output tiles * 8 channels * 64 bit (1 acc) * 22.9 = 5,862.4 pJ.
    c = layer_cost(ConvLayer(32, 32, 32, 32, kernel=3, stride=1, groups=32), ACC)
    assert c.temporal_cycles == 2304 and c.utilization == 0.125
    assert c.latency_cycles == 2306
    expected = {"mac": 11_796.48, "W.rf": 368.64, "W.sram": 6_595.2, "I.sram": 479_416.32,
                "O.rf": 12_451.84, "O.sram": 48_435.2, "B.sram": 5_862.4}
    for term, pj in expected.items():
        assert close(c.breakdown[term], pj), term
    assert close(c.energy_pj, 564_926.08)


def test_depthwise_on_the_default_unrolling_uses_16_macs():
    acc = _with_design(mac_array=replace(ACC.cores[0].design.mac_array, depthwise_groups_on_d1=False))
    c = layer_cost(ConvLayer(32, 32, 32, 32, kernel=3, groups=32), acc)
    # K = C = 1 per group: 16 of 1024 MACs; T = 32 groups * 9 taps * 64 pixel tiles.
    assert c.temporal_cycles == 32 * 9 * 64
    assert c.utilization == pytest.approx(16 / 1024)


def test_fully_connected_layer():
    # FC 1280 -> 10: K = 10 on D1 = 8 takes 2 tiles, C tiles 160, 1x1 pixels: T = 320 cycles for
    # 12,800 MACs -> 3.9% utilisation.  Traffic is that of the real data, ZigZag's fractional
    # unrolling: 10 / 2 tiles = 5 output channels per tile on average (not a padded 8).
    # W: 5 * 8 weights = 320 bit per cycle: RF 2*320*40*0.01 = 256; SRAM 320 * (320/64 * 64/512 acc) * 22.9 = 4,580.
    # B: 2 output tiles * 5 channels * 64 bit = 320 bit (0.625 acc) * 22.9 = 28.625.
    # I: 8 inputs = 64 bit per cycle: 320 * 64/2048 * 416.16 = 4,161.6.
    # O: 5 psums: 320*5*2*0.02 = 64 + 10 drains * 0.02 = 0.2; SRAM 2 tiles * 40 bit (1 64-bit word) = 2 * 64/2048
    #    * 378.4 = 23.65.
    # Latency 1 (load 320 bit: the integer tile, 5 * 8 weights) + 320 + 1 (drain 40 bit).
    c = layer_cost(ConvLayer(1280, 10, 1, 1), ACC)
    assert c.temporal_cycles == 320 and c.latency_cycles == 322
    assert c.utilization == pytest.approx(12_800 / (320 * 1024))
    expected = {"mac": 512, "W.rf": 256, "W.sram": 4_580, "B.sram": 28.625, "I.sram": 4_161.6, "O.rf": 64.2,
                "O.sram": 23.65}
    for term, pj in expected.items():
        assert close(c.breakdown[term], pj), term
    assert close(c.energy_pj, 9_626.075)  # padded 8-channel tiles: 12,537.57 + 45.8 of biases = 12,583.37


def test_partial_tiles_pay_cycles_but_only_real_traffic():
    # K = 20 on D1 = 8: 3 tiles (cycles as for 24 channels) of 20/3 channels on average (traffic as for 20).
    # Per cycle 20/3 * 8 weights * 8 bit = 426.67 bit -> 7 words of 64 bit -> 7/8 of a 512-bit access.
    c = layer_cost(ConvLayer(64, 20, 4, 4), ACC)
    padded = layer_cost(ConvLayer(64, 24, 4, 4), ACC)
    assert c.temporal_cycles == padded.temporal_cycles == 3 * 8
    assert close(c.breakdown["W.sram"], 24 * 7 / 8 * 22.9)
    assert close(c.breakdown["O.rf"], 24 * 20 / 3 * 16 * 2 * 0.02 + 20 * 16 * 0.02)
    assert c.energy_pj < padded.energy_pj and c.latency_cycles == padded.latency_cycles


def test_four_bit_layer_without_packing():
    # The worked example at w4a4: same 512 + 2 cycles (no packing), half-width SRAM accesses.
    # W SRAM: 64 * 4 = 256 bit -> 0.5 acc: 512 * 0.5 * 22.9 = 5,862.4.
    # I SRAM: 128 * 4 = 512 bit -> 0.25 acc: 512 * 0.25 * 416.16 = 53,268.48.
    # O SRAM: 128 * 4 = 512 bit -> 0.25 acc: 128 * 0.25 * 378.4 = 12,108.8.
    # Registers: a 4-bit word still takes one access; psums stay 16 bit.  Biases and scales keep
    # their 32 bits: B.sram 2,931.2 as at 8 bits.
    c = layer_cost(ConvLayer(32, 16, 32, 32), ACC, weight_bits=4, act_bits=4)
    assert c.latency_cycles == 514
    assert close(c.energy_pj, 20_971.52 + 655.36 + 5_862.4 + 53_268.48 + 2_949.12 + 12_108.8 + 2_931.2)


def test_four_bit_layer_with_packing(tmp_path):
    # packs_low_precision: 8 // 4 = 2 MACs per multiplier, D2 holds 16 input channels.
    # T = 2 K tiles * 2 C tiles * 64 pixel tiles = 256.  Per cycle: 128 weights * 4 bit = 1 W-SRAM access,
    # 256 inputs * 4 bit = 0.5 act access, 128 psums.  W SRAM 256 * 22.9 = 5,862.4; W RF 2*256*128*0.01;
    # I SRAM 256 * 0.5 * 416.16 = 53,268.48; O RF 2*256*128*0.02 + 16,384*0.02; O SRAM 12,108.8;
    # B SRAM 128 output tiles * 8 channels * 64 bit * 22.9 / 512 = 2,931.2.
    acc = load_accelerator(_preset_file(tmp_path, lambda d: _set_all_cores(d, "packs_low_precision", True)))
    c = layer_cost(ConvLayer(32, 16, 32, 32), acc, weight_bits=4, act_bits=4)
    assert c.temporal_cycles == 256 and c.latency_cycles == 258 and c.utilization == 1.0
    assert close(c.energy_pj, 20_971.52 + 655.36 + 5_862.4 + 53_268.48 + 1_638.4 + 12_108.8 + 2_931.2)
    # An 8-bit input (the image) cannot be packed: the stem-like layer keeps 512 cycles.
    assert layer_cost(ConvLayer(32, 16, 32, 32), acc, weight_bits=4, act_bits=4, input_bits=8).temporal_cycles == 512
    # An 8-bit layer on the same array is unchanged.
    assert layer_cost(ConvLayer(32, 16, 32, 32), acc).latency_cycles == 514


def test_layer_whose_weights_spill_to_dram():
    # 1x1 320 -> 1280 at 4x4: 409,600 weights * 8 = 3,276,800 bit, plus 1280 * 64 bit of biases and
    # scales = 3,358,720 bit > 32 KiB (262,144 bit).  K tiles outermost: one tile's weights (20,480
    # bit) fit, so the kernel streams once: DRAM 3,358,720 / 64 = 52,480 accesses * 1000 = 52.48 uJ,
    # plus 6,560 W-SRAM writes * 52.01.  On chip: T = 160 K tiles * 40 C tiles = 6,400 (1 pixel
    # tile).  Loading = 1 (SRAM->RF) + 8 (the first 512-bit tile from DRAM), draining 1.  The DRAM
    # port needs 52,480 cycles, the first tile's 8 included, so the layer stalls
    # 52,480 - 8 - 6,400 = 46,072 cycles: 9 + 6,400 + 46,072 + 1.
    layer = ConvLayer(320, 1280, 4, 4)
    on_chip = layer_cost(layer, ACC, dram=False)
    spilled = layer_cost(layer, ACC, dram=True)
    assert on_chip.latency_cycles == 6_402 and on_chip.dram_bits == 0
    assert spilled.dram_bits == 3_358_720
    assert close(spilled.breakdown["W.dram"], 52_480_000)
    assert close(spilled.breakdown["W.sram"] - on_chip.breakdown["W.sram"], 6_560 * 52.01)
    assert spilled.onload_cycles == 9 and spilled.stall_cycles == 46_072
    assert spilled.latency_cycles == 52_482
    assert close(spilled.energy_pj, on_chip.energy_pj + 52_480_000 + 6_560 * 52.01)


def test_kernel_streams_again_per_pixel_tile_when_one_tile_does_not_fit():
    # 1x1 8192 -> 16 at 8x8: 1,048,576 weight bits; a K tile holds 8 * 8192 * 8 = 524,288 bit > 32 KiB,
    # so the kernel is re-read from DRAM for each of the 2 * 2 pixel tiles: 4,194,304 bit, plus 16 * 64 bit
    # of biases and scales once = 4,195,328 bit = 65,552 accesses.
    c = layer_cost(ConvLayer(8192, 16, 8, 8), ACC, dram=True)
    assert c.dram_bits == 4 * 1_048_576 + 1_024
    assert close(c.breakdown["W.dram"], 65_552_000)


def test_activations_spill_when_input_and_output_exceed_the_act_sram():
    # Float depthwise 288 ch at 32x32: input = output = 288*1024*32 = 9,437,184 bit; together > 2 MiB.
    # Both go through DRAM once: 147,456 accesses each way at 1000 pJ.
    c = layer_cost(ConvLayer(288, 288, 32, 32, kernel=3, groups=288), ACC, weight_bits=32, act_bits=32, dram=True)
    assert close(c.breakdown["I.dram"], 147_456_000) and close(c.breakdown["O.dram"], 147_456_000)
    assert c.latency_cycles >= c.dram_bits / 64
    assert layer_cost(ConvLayer(288, 288, 32, 32, kernel=3, groups=288), ACC, 0, 8, 8, dram=True).dram_bits == 0


def test_pooling_and_addition():
    # Global average pool 1280 x 2x2: 160 channel tiles, one 2x2 window each (4 of 9 window units):
    # ops 5,120 * 0.1 = 512; reads 160 * 256 bit (4/9 of a 576-bit access) * 60 = 4,266.67;
    # writes 160 * 64 bit (1/8 of 512) * 75 = 1,500; 1 + 160 + 1 cycles.
    pool = layer_cost(PoolLayer(1280, 2, 2, kernel=2, mode="avg"), ACC)
    assert pool.latency_cycles == 162 and pool.macs == 0 and pool.ops == 5_120
    assert close(pool.energy_pj, 512 + 160 * 60 * 4 / 9 + 1_500)
    # Residual add of 24 x 16x16 on 64 SIMD lanes: 6,144 ops -> 96 cycles, 614.4 pJ.
    add = layer_cost(AddLayer(24, 16, 16), ACC)
    assert add.latency_cycles == 96 and close(add.energy_pj, 614.4)


def test_cost_grows_with_channels():
    for kernel, groups_of in ((1, None), (3, None), (3, "dw")):
        prev = None
        for channels in (8, 16, 32, 64, 128, 256):
            groups = channels if groups_of else 1
            c = layer_cost(ConvLayer(channels, channels, 16, 16, kernel=kernel, groups=groups), ACC, dram=True)
            if prev is not None:
                assert c.energy_pj > prev.energy_pj and c.latency_cycles >= prev.latency_cycles
            prev = c


@pytest.mark.parametrize("packing", [False, True])
def test_fewer_bits_never_cost_more(tmp_path, packing):
    acc = load_accelerator(_preset_file(tmp_path, lambda d: _set_all_cores(d, "packs_low_precision", packing)))
    layers = [ConvLayer(32, 16, 32, 32), ConvLayer(96, 96, 16, 16, 3, 2, 96), ConvLayer(3, 32, 32, 32, 3),
              ConvLayer(320, 1280, 2, 2), ConvLayer(1280, 10, 1, 1), PoolLayer(128, 8, 8, 2)]
    grid = list(itertools.product((2, 4, 8, 32), repeat=2))  # (weight bits, activation bits)
    for layer in layers:
        for dram in (False, True):
            for (w1, a1), (w2, a2) in itertools.product(grid, repeat=2):
                if w1 <= w2 and a1 <= a2:
                    fewer = layer_cost(layer, acc, 0, w1, a1, dram)
                    more = layer_cost(layer, acc, 0, w2, a2, dram)
                    assert fewer.energy_pj <= more.energy_pj, (layer, w1, a1, w2, a2, dram)
                    assert fewer.latency_cycles <= more.latency_cycles, (layer, w1, a1, w2, a2, dram)


@pytest.mark.parametrize("make", [
    lambda: ConvLayer(-1, 16, 32, 32),
    lambda: ConvLayer(32, 16, 0, 32),
    lambda: ConvLayer(32, 16, 32, 32, stride=-2),
    lambda: ConvLayer(32, 15, 32, 32, groups=2),
    lambda: PoolLayer(8, 4, 4, kernel=8),
    lambda: PoolLayer(8, 4, 4, kernel=2, mode="median"),
    lambda: AddLayer(8, -4, 4),
])
def test_bad_shapes_are_one_line_errors(make):
    with pytest.raises(EenasError) as err:
        make()
    assert "\n" not in str(err.value)


def test_bad_arguments_are_one_line_errors():
    layer = ConvLayer(32, 16, 32, 32)
    for kwargs, field in (({"core": 4}, "core"), ({"weight_bits": 3}, "weight_bits"), ({"act_bits": 16}, "act_bits")):
        with pytest.raises(EenasError, match=field):
            layer_cost(layer, ACC, **kwargs)
    with pytest.raises(EenasError, match="unknown layer type 'str'"):
        layer_cost("conv", ACC)  # type: ignore[arg-type]


def _preset_dict() -> dict:
    text = resources.files("eenas.hardware").joinpath("presets").joinpath("edge_tpu_quad.yaml").read_text()
    return yaml.safe_load(text)


def _set_all_cores(data: dict, key: str, value: object) -> None:
    for core in data["cores"]:
        core["mac_array"] = {**core["mac_array"], key: value}


def _preset_file(tmp_path, edit) -> str:
    data = _preset_dict()
    edit(data)
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in data.items() if not k.startswith("x-")}))
    return str(path)


def _with_design(**changes):
    cores = tuple(replace(c, design=replace(c.design, **changes)) for c in ACC.cores)
    return replace(ACC, cores=cores)
