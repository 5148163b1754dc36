"""``eenas cost --onnx``: the workload read from ONNX, hand-derived shapes and bits, and the round trip with --arch."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")

import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from eenas.arch import Arch, BackboneConfig, ExitConfig, Precision, QuantConfig, arch_from_dict, save_arch  # noqa: E402
from eenas.cli import main  # noqa: E402
from eenas.export import export_arch  # noqa: E402
from eenas.hardware import network_cost  # noqa: E402
from eenas.hardware.layers import AddLayer, ConvLayer, PoolLayer  # noqa: E402
from eenas.hardware.network import graph_network_cost  # noqa: E402
from eenas.hardware.onnx_workload import read_onnx  # noqa: E402
from eenas.models.backbone import Backbone  # noqa: E402
from eenas.models.early_exit import EarlyExitNet  # noqa: E402
from eenas.models.heads import build_head  # noqa: E402
from eenas.models.spec import mobilenet_v2_spec  # noqa: E402
from eenas.quant import calibrate, quantize_backbone, quantize_head  # noqa: E402
from tests.conftest import arch_dict  # noqa: E402

WIDTH = 0.25


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr("eenas.io.DEFAULT_CACHE_DIR", tmp_path / "cache")


def _exported(arch: Arch, out) -> str:
    """``arch``'s network with calibrated (untrained) quantizers, exported: the cost needs shapes and bits only."""
    torch.manual_seed(0)
    spec = mobilenet_v2_spec(WIDTH)
    backbone = quantize_backbone(Backbone(10, WIDTH), arch.quant.backbone)
    heads = {}
    for e in arch.exits:
        block = spec.block(e.after_block)
        heads[e.after_block] = quantize_head(build_head(e.head, block.out_channels, block.out_size, 10),
                                             arch.quant.exits)
    net = EarlyExitNet(backbone, heads).eval()
    calibrate(net, torch.randn(8, 3, 32, 32))
    return str(export_arch(arch, net, out).model)


def _arch(exits, bits=(8, 8)) -> Arch:
    """Exits ``(block, head)`` or ``(block, head, core, overlap)``."""
    quant = QuantConfig(Precision(bits[0], bits[0]), Precision(bits[1], bits[1]))
    return Arch("synthetic", BackboneConfig("mobilenet_v2", WIDTH), tuple(ExitConfig(e[0], e[1], 0.9, *e[2:])
                                                                          for e in exits), quant)


ROUND_TRIPS = {
    "every head, 8/8": ([(1, "dsconv_pool_fc"), (3, "gap_fc"), (6, "pool_fc"), (13, "conv_pool_fc")], (8, 8)),
    "every head, 4/2": ([(2, "pool_fc"), (5, "conv_pool_fc"), (10, "gap_fc"), (16, "dsconv_pool_fc")], (4, 2)),
    "2x2 mounts, 2/8": ([(14, "pool_fc"), (15, "dsconv_pool_fc"), (17, "gap_fc")], (2, 8)),
    "float": ([(4, "conv_pool_fc"), (7, "pool_fc"), (11, "dsconv_pool_fc")], (32, 32)),
    "pinned cores, overlap": ([(3, "pool_fc", 0, False), (8, "conv_pool_fc", 2, True), (12, "gap_fc", None, True)],
                              (8, 8)),
}


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_cost_of_the_exported_onnx_equals_the_cost_of_the_arch(tmp_path, name):
    exits, bits = ROUND_TRIPS[name]
    arch = _arch(exits, bits)
    model = _exported(arch, tmp_path)
    float_bits = 32 if bits == (32, 32) else 8  # a float graph has no Q/DQ to read bits from
    ours = network_cost(arch, "edge_tpu_quad", allocation="greedy")
    theirs = graph_network_cost(read_onnx(model, float_bits, float_bits), "edge_tpu_quad", allocation="greedy")
    assert [e.head for e in theirs.cost.exits] == [f"exit_b{e[0]}" for e in exits] + ["final"]
    assert len(theirs.layers) == len(ours.layers)
    for a, b in zip(ours.cost.exits, theirs.cost.exits):
        assert b.cum_macs == a.cum_macs
        assert b.cum_latency_cycles == pytest.approx(a.cum_latency_cycles, rel=0.01)
        assert b.cum_energy_pj == pytest.approx(a.cum_energy_pj, rel=0.01)
        assert (b.overlap, b.wasted_energy_pj) == (a.overlap, pytest.approx(a.wasted_energy_pj, rel=0.01))
    assert theirs.cost.static_latency_cycles == ours.cost.static_latency_cycles


def test_cli_round_trip_with_the_searched_allocation(tmp_path, monkeypatch, capsys):
    arch = _arch([(3, "pool_fc", 1, False), (8, "conv_pool_fc", 0, True)])
    arch_path = tmp_path / "arch.json"
    save_arch(arch, arch_path)
    model = _exported(arch, tmp_path / "onnx")
    tables = []
    for source in (["--arch", str(arch_path)], ["--onnx", model]):
        monkeypatch.setattr(sys, "argv", ["eenas", "cost", *source, "--format", "json", "--exit-ratios", "0.5,0.3,0.2"])
        main()
        tables.append(json.loads(capsys.readouterr().out))
    ours, theirs = tables
    assert [e["after_block"] for e in theirs["exits"]] == ["b3.Add_0", "b8.Add_0", "final"]
    for a, b in zip(ours["exits"], theirs["exits"]):
        assert b["cycles"] == pytest.approx(a["cycles"], rel=0.01) and b["energy_pj"] == pytest.approx(a["energy_pj"],
                                                                                                         rel=0.01)
    assert theirs["summary"]["et_ratio"] == pytest.approx(ours["summary"]["et_ratio"], rel=0.01)
    assert theirs["layers"][0]["layer"] == "stem.Conv_0"


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def _hand_model(path, extra_op: str | None = None) -> str:
    """image 3x8x8 -> 8-bit Q/DQ -> conv 3x3 3->8 stride 2 (4-bit weights) -> relu -> Q/Clip(0..3)/DQ (2 bits)
    -> depthwise 3x3 (8 bits) -> add(dw, conv) -> maxpool 2 -> flatten -> gemm 32->10 (default bits)."""
    n = helper.make_node
    nodes = [
        n("QuantizeLinear", ["image", "s", "z8"], ["iq"], name="in_q"),
        n("DequantizeLinear", ["iq", "s", "z8"], ["x"], name="in_dq"),
        n("QuantizeLinear", ["w1", "s", "z8"], ["w1q"], name="w1_q"),
        n("Clip", ["w1q", "lo4", "hi4"], ["w1c"], name="w1_clip"),
        n("DequantizeLinear", ["w1c", "s", "z8"], ["w1d"], name="w1_dq"),
        n("Conv", ["x", "w1d", "b1"], ["c1"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        n("Relu", ["c1"], ["r1"], name="relu"),
        n("QuantizeLinear", ["r1", "s", "zu"], ["aq"], name="a_q"),
        n("Clip", ["aq", "lo2", "hi2"], ["ac"], name="a_clip"),
        n("DequantizeLinear", ["ac", "s", "zu"], ["a"], name="a_dq"),
        n("Conv", ["a", "w2"], ["c2"], name="dw", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        n("Add", ["a", "c2"], ["sum"], name="add"),
        n("MaxPool", ["sum"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        n("Flatten", ["p"], ["f"], name="flatten"),
        n("Gemm", ["f", "w3"], ["logits"], name="fc", transB=1),
    ]
    if extra_op:
        nodes.append(n(extra_op, ["logits"], ["out"], name="odd"))
    inits = [_const("s", np.float32(0.1)), _const("z8", np.int8(0)), _const("zu", np.uint8(0)),
             _const("lo4", np.int8(-8)), _const("hi4", np.int8(7)), _const("lo2", np.uint8(0)),
             _const("hi2", np.uint8(3)), _const("w1", np.ones((8, 3, 3, 3), np.float32)),
             _const("b1", np.zeros(8, np.float32)), _const("w2", np.ones((8, 1, 3, 3), np.float32)),
             _const("w3", np.ones((10, 32), np.float32))]
    graph = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out" if extra_op else "logits", TensorProto.FLOAT, None)],
                              inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def test_hand_built_graph_gives_hand_derived_layers_and_bits(tmp_path):
    w = read_onnx(_hand_model(tmp_path / "hand.onnx"))
    assert w.exit_names == ("logits",) and w.heads == () and len(w.blocks) == 1
    assert w.image_bits == 3 * 8 * 8 * 8  # the input's Q is int8
    conv, dw, add, pool, fc = w.blocks[0].nodes
    assert conv.layer == ConvLayer(3, 8, 8, 8, 3, 2) and conv.layer.macs == 8 * 27 * 4 * 4  # 3,456
    assert (conv.weight_bits, conv.input_bits, conv.act_bits) == (4, 8, 2)  # Clip -8..7 and 0..3 after the Qs
    assert dw.layer == ConvLayer(8, 8, 4, 4, 3, 1, 8) and dw.layer.kind == "depthwise" and dw.layer.macs == 8 * 9 * 16
    assert (dw.weight_bits, dw.input_bits, dw.act_bits) == (8, 2, 8)  # no Q/DQ: the defaults
    assert add.layer == AddLayer(8, 4, 4) and add.inputs == ("dw", "conv")  # the later operand first
    assert pool.layer == PoolLayer(8, 4, 4, 2, 2, "max") and pool.act_bits == 8  # keeps its input's bits
    assert fc.layer == ConvLayer(32, 10, 1, 1) and fc.inputs == ("pool",)
    nc = graph_network_cost(w, "edge_tpu_quad", allocation="greedy")
    assert [r.name for r in nc.layers] == ["conv", "dw", "add", "pool", "fc"]
    assert nc.cost.exits[0].cum_macs == 3456 + 1152 + 320


def test_unknown_operator_is_one_line_naming_the_node_unless_skipped(tmp_path, monkeypatch, capsys, caplog):
    path = _hand_model(tmp_path / "odd.onnx", "Softmax")
    monkeypatch.setattr(sys, "argv", ["eenas", "cost", "--onnx", path])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "node 'odd' (Softmax): no cost model for this operator" in err
    w = read_onnx(path, skip_unknown=True)
    assert [n.name for n in w.blocks[0].nodes] == ["conv", "dw", "add", "pool", "fc"]
    assert "costed as zero: odd (Softmax)" in caplog.text


@pytest.mark.parametrize("content", [b"not an onnx model at all \x00\xff", b"", b"\x08\x07"])
def test_malformed_or_non_onnx_file_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    monkeypatch.setattr(sys, "argv", ["eenas", "cost", "--onnx", str(path)])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("eenas: error: --onnx: ") and err.count("\n") == 1


@pytest.mark.parametrize("args", [[], ["--arch", "a.json", "--onnx", "m.onnx"]])
def test_exactly_one_of_arch_and_onnx(monkeypatch, capsys, args):
    monkeypatch.setattr(sys, "argv", ["eenas", "cost", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "exactly one of --arch and --onnx" in capsys.readouterr().err


def test_missing_onnx_package_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    from eenas.errors import EenasError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    with pytest.raises(EenasError, match=r"onnx not installed: pip install 'eenas\[onnx\]'"):
        read_onnx(tmp_path / "m.onnx")
    assert arch_from_dict(arch_dict()).exits  # the arch path needs no onnx


def test_exit_mapping_metadata_is_checked(tmp_path):
    from eenas.errors import EenasError
    from eenas.hardware.onnx_workload import EXIT_MAPPING_KEY

    model = onnx.load(_exported(_arch([(3, "pool_fc", 1, True)]), tmp_path))
    assert json.loads(model.metadata_props[0].value) == {"exit_b3": {"core": 1, "overlap": True}}
    for value, message in [('{"exit_b3": {"core": 9}}', "exit_b3: core 9 is not a compute core of edge_tpu_quad"),
                           ("[1, 2]", f"metadata {EXIT_MAPPING_KEY}: expected")]:
        helper.set_model_props(model, {EXIT_MAPPING_KEY: value})
        onnx.save(model, str(tmp_path / "m.onnx"))
        with pytest.raises(EenasError, match=message):
            graph_network_cost(read_onnx(tmp_path / "m.onnx"), "edge_tpu_quad", allocation="greedy")
