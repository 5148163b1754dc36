"""``eenas cost --onnx``: the workload read from ONNX, hand-derived shapes and bits, and the round trip with --arch."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

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


def _graph(path, nodes: list, inits: dict, shape=(1, 3, 8, 8), opset: int = 13) -> str:
    """A model of ``nodes`` from ``image`` (of ``shape``) to ``out``, with the initializers ``inits``."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              [_const(name, value) for name, value in inits.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return str(path)


def _conv_model(path, weight=(8, 3, 3, 3), **attrs) -> str:
    attrs.setdefault("kernel_shape", list(weight[2:]))
    conv = helper.make_node("Conv", ["image", "w"], ["out"], name="conv", **attrs)
    return _graph(path, [conv], {"w": np.ones(weight, np.float32)})


def _one_line_error(monkeypatch, capsys, *args: str) -> str:
    """``eenas cost ARGS`` fails as the CLI promises: exit code 2, one line starting 'eenas: error:'."""
    monkeypatch.setattr(sys, "argv", ["eenas", "cost", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("eenas: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("option", ["--weight-bits", "--act-bits"])
@pytest.mark.parametrize("bits", ["-8", "0", "1", "3", "1000"])
def test_unsupported_bit_options_are_refused_naming_the_option(tmp_path, monkeypatch, capsys, option, bits):
    """Regression (issue 32): -8 printed negative energy with exit 0; 0, 1, 3 and 1000 were costed too."""
    err = _one_line_error(monkeypatch, capsys, "--onnx", _hand_model(tmp_path / "m.onnx"), option, bits)
    assert f"{option} {bits}: must be one of 32, 8, 4, 2" in err


def test_q_dq_bits_outside_the_supported_widths_name_the_node(tmp_path, monkeypatch, capsys):
    """Regression (issue 32): bits read from Q/DQ pairs get the options' check (an int16 Q, a 3- or 1-bit Clip)."""
    n = helper.make_node
    inits = {"s": np.float32(0.1), "z8": np.int8(0), "zu": np.uint8(0), "one": np.uint8(1), "z16": np.int16(0),
             "lo": np.int8(-4), "hi": np.int8(3), "w": np.ones((8, 3, 3, 3), np.float32)}

    def conv(output: str = "out"):
        return n("Conv", ["x", "wd"], [output], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])

    image = [n("QuantizeLinear", ["image", "s", "z8"], ["iq"]), n("DequantizeLinear", ["iq", "s", "z8"], ["x"])]
    weight = [n("QuantizeLinear", ["w", "s", "z8"], ["wq"]), n("DequantizeLinear", ["wq", "s", "z8"], ["wd"])]
    int16 = [n("QuantizeLinear", ["image", "s", "z16"], ["iq"], name="in_q"),
             n("DequantizeLinear", ["iq", "s", "z16"], ["x"])]
    clipped = [n("QuantizeLinear", ["w", "s", "z8"], ["wq"]), n("Clip", ["wq", "lo", "hi"], ["wc"], name="w_clip"),
               n("DequantizeLinear", ["wc", "s", "z8"], ["wd"])]
    binary = [n("QuantizeLinear", ["c", "s", "zu"], ["cq"]), n("Clip", ["cq", "zu", "one"], ["cc"], name="a_clip"),
              n("DequantizeLinear", ["cc", "s", "zu"], ["out"])]
    for nodes, opset, message in [
        ([*int16, *weight, conv()], 21, "node 'in_q' (QuantizeLinear): bit-width 16: must be one of 32, 8, 4, 2"),
        ([*image, *clipped, conv()], 13, "node 'w_clip' (Clip): bit-width of the range -4..3 is 3: must be one of"),
        ([*image, *weight, conv("c"), *binary], 13,
         "node 'a_clip' (Clip): bit-width of the range 0..1 is 1: must be one of"),
    ]:
        path = _graph(tmp_path / "q.onnx", nodes, inits, opset=opset)
        assert message in _one_line_error(monkeypatch, capsys, "--onnx", path)


@pytest.mark.parametrize("shape, weight, group, message", [
    ((1, 3, 8, 8), (8, 5, 3, 3), 1, "the weight [8, 5, 3, 3] with group 1 takes 5 input channels, the input has 3"),
    ((1, 8, 8, 8), (8, 1, 3, 3), 4, "the weight [8, 1, 3, 3] with group 4 takes 4 input channels, the input has 8"),
])
def test_a_conv_weight_that_does_not_fit_its_input_names_the_node(tmp_path, monkeypatch, capsys, shape, weight, group,
                                                                  message):
    """Regression (issue 32): the input's channels were costed whatever the weight said, with exit code 0."""
    conv = helper.make_node("Conv", ["image", "w"], ["out"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                            group=group)
    path = _graph(tmp_path / "m.onnx", [conv], {"w": np.ones(weight, np.float32)}, shape)
    assert f"node 'conv' (Conv): {message}" in _one_line_error(monkeypatch, capsys, "--onnx", path)


@pytest.mark.parametrize("size, stride", [(8, 1), (8, 2), (7, 2), (9, 3)])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_auto_pad_same_is_costed_as_the_explicit_pads_onnx_defines(tmp_path, size, stride, auto_pad):
    """Regression (issue 32): auto_pad SAME_* was refused as 'pads [0, 0, 0, 0]'.  ONNX pads to an output of
    ceil(size / stride), the odd pixel at the end (UPPER) or the beginning (LOWER): 8 at stride 2 pads 1 pixel,
    so [0, 0, 1, 1] or [1, 1, 0, 0]; both are the cost model's 'same' convolution."""
    total = (-(-size // stride) - 1) * stride + 3 - size
    pads = [total // 2] * 2 + [total - total // 2] * 2
    explicit = pads if auto_pad == "SAME_UPPER" else pads[2:] + pads[:2]
    same = read_onnx(_graph(tmp_path / "a.onnx", [helper.make_node(
        "Conv", ["image", "w"], ["out"], name="conv", kernel_shape=[3, 3], strides=[stride] * 2, auto_pad=auto_pad)],
        {"w": np.ones((8, 3, 3, 3), np.float32)}, (1, 3, size, size)))
    padded = read_onnx(_graph(tmp_path / "p.onnx", [helper.make_node(
        "Conv", ["image", "w"], ["out"], name="conv", kernel_shape=[3, 3], strides=[stride] * 2, pads=explicit)],
        {"w": np.ones((8, 3, 3, 3), np.float32)}, (1, 3, size, size)))
    layer = ConvLayer(3, 8, size, size, 3, stride)
    assert same.blocks[0].nodes[0].layer == padded.blocks[0].nodes[0].layer == layer
    assert layer.out_height == -(-size // stride)


@pytest.mark.parametrize("kernel, attrs, message", [
    (2, {"auto_pad": "SAME_UPPER"}, "a 9x9 output here), got pads [0, 0, 1, 1] (a 8x8 output)"),
    (3, {"auto_pad": "VALID"}, "a 8x8 output here), got pads [0, 0, 0, 0] (a 6x6 output)"),
])
def test_padding_the_cost_model_cannot_represent_is_refused_accurately(tmp_path, monkeypatch, capsys, kernel, attrs,
                                                                       message):
    conv = helper.make_node("Conv", ["image", "w"], ["out"], name="conv", kernel_shape=[kernel] * 2, **attrs)
    path = _graph(tmp_path / "m.onnx", [conv], {"w": np.ones((8, 3, kernel, kernel), np.float32)})
    err = _one_line_error(monkeypatch, capsys, "--onnx", path)
    assert "node 'conv' (Conv): only 'same' padding is modelled (kernel // 2 on each side: " + message in err


def test_a_pooling_auto_pad_is_read_as_its_pads(tmp_path):
    """auto_pad of a pooling was ignored; SAME that pads nothing is costed, SAME that pads is refused."""
    from eenas.errors import EenasError

    n = helper.make_node
    conv = n("Conv", ["image", "w"], ["c"], name="conv", kernel_shape=[1, 1])
    inits = {"w": np.ones((8, 3, 1, 1), np.float32)}
    even = n("MaxPool", ["c"], ["out"], name="pool", kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")
    pool = read_onnx(_graph(tmp_path / "even.onnx", [conv, even], inits)).blocks[0].nodes[1]
    assert pool.layer == PoolLayer(8, 8, 8, 2, 2, "max")
    odd = n("MaxPool", ["c"], ["out"], name="pool", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    with pytest.raises(EenasError, match=r"node 'pool' \(MaxPool\): only square kernels with equal strides and no pad"):
        read_onnx(_graph(tmp_path / "odd.onnx", [conv, odd], inits))


def test_matmul_plus_add_is_a_fully_connected_layer_like_gemm(tmp_path):
    """Regression (issue 32): the MatMul + Add many exporters write for a linear layer was refused at the Add."""
    n = helper.make_node
    inits = {"w": np.ones((192, 10), np.float32), "b": np.zeros(10, np.float32)}
    matmul = read_onnx(_graph(tmp_path / "mm.onnx", [n("Flatten", ["image"], ["f"]), n("MatMul", ["f", "w"], ["m"],
                                                                                        name="fc"),
                                                     n("Add", ["m", "b"], ["out"], name="bias")], inits))
    gemm = read_onnx(_graph(tmp_path / "gemm.onnx", [n("Flatten", ["image"], ["f"]),
                                                     n("Gemm", ["f", "w", "b"], ["out"], name="fc")], inits))
    assert [(x.name, x.layer) for x in matmul.blocks[0].nodes] == [("fc", ConvLayer(192, 10, 1, 1))]
    ours, theirs = (graph_network_cost(w, "edge_tpu_quad", allocation="greedy").cost for w in (matmul, gemm))
    assert (ours.exits[0].cum_latency_cycles, ours.exits[0].cum_energy_pj) == (theirs.exits[0].cum_latency_cycles,
                                                                               theirs.exits[0].cum_energy_pj)



def _without_weights(path: str, declared: str, shapes: bool) -> str:
    """The model in ``path`` with no initializers, as the reference work's workload files are: each weight (scale,
    bias...) a graph input or a value_info (``declared``), with its shape or none.  Without shapes the activations
    keep theirs in value_info, from a shape inference of the full model, as in Stream's files."""
    model = onnx.load(path)
    if not shapes:
        model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    weights = list(graph.initializer)
    del graph.initializer[:]
    derived = {w.name for w in weights}  # the weights and what Q/Clip/DQ make of them
    for node in graph.node:
        if all(x in derived for x in node.input if x):
            derived.update(node.output)
    if not shapes:
        activations = [v for v in graph.value_info if v.name not in derived]
        del graph.value_info[:]
        graph.value_info.extend(activations)
    getattr(graph, declared).extend(helper.make_tensor_value_info(w.name, w.data_type, list(w.dims) if shapes else None)
                                    for w in weights)
    out = path.replace(".onnx", f"-{declared}-{shapes}.onnx")
    onnx.save(model, out)
    return out


def _nodes(w) -> list[list[tuple]]:
    """Each trunk's and head's nodes as values (nodes compare by identity)."""
    return [[dataclasses.astuple(n) for n in part] for part in [*(b.nodes for b in w.blocks), *w.heads]]


def _exit_params(w) -> list[int]:
    """Each exit's parameter count: the weights of the trunks up to it and of its head."""
    trunk = [sum(n.layer.weight_count for n in b.nodes if isinstance(n.layer, ConvLayer)) for b in w.blocks]
    heads = [sum(n.layer.weight_count for n in h if isinstance(n.layer, ConvLayer)) for h in w.heads] + [0]
    return [sum(trunk[:i + 1]) + heads[i] for i in range(len(w.blocks))]


@pytest.fixture(scope="module")
def weighted(tmp_path_factory) -> str:
    """Every head at 4/2 bits, exported with its weights once for the weight-less variants below."""
    arch = _arch([(2, "pool_fc"), (5, "conv_pool_fc", 1, True), (10, "gap_fc"), (16, "dsconv_pool_fc")], (4, 2))
    return _exported(arch, tmp_path_factory.mktemp("weighted"))


@pytest.mark.parametrize("declared, shapes", [("input", True), ("value_info", True), ("input", False),
                                               ("value_info", False)])
def test_an_export_without_initializers_costs_the_same_as_with_them(weighted, monkeypatch, capsys, declared, shapes):
    """Issue 30: weight-less files (Stream's) were refused; their weights' shapes are declared or follow from the
    nodes, their bits from the Q/DQ pairs, so every figure equals the full file's."""
    full = weighted
    # One cache for the four variants: the full file's allocation (keyed by the file's bytes) is searched once.
    monkeypatch.setattr("eenas.io.DEFAULT_CACHE_DIR", Path(full).parent / "cache")
    stripped = _without_weights(full, declared, shapes)
    assert not onnx.load(stripped).graph.initializer
    ours, theirs = read_onnx(full), read_onnx(stripped)
    assert (_nodes(theirs), theirs.image_bits) == (_nodes(ours), ours.image_bits)
    assert _exit_params(theirs) == _exit_params(ours) and min(_exit_params(ours)) > 0
    tables = []
    for model in (full, stripped):
        monkeypatch.setattr(sys, "argv", ["eenas", "cost", "--onnx", model, "--format", "json",
                                          "--exit-ratios", "0.4,0.3,0.1,0.1,0.1"])
        main()
        tables.append(json.loads(capsys.readouterr().out))
    assert tables[1] == tables[0]
    assert [e["head"] for e in tables[0]["exits"]] == ["exit_b2", "exit_b5", "exit_b10", "exit_b16", "final"]


def _weightless_model(path, conv_shape: bool = True, out_shape: bool = True, group: int = 8) -> str:
    """image 8x6x6 -> depthwise conv 3x3 stride 2 (weight a graph input without shape) -> relu -> flatten
    -> gemm 72->5 (weight a value_info without shape, bias a graph input), the activations' shapes in value_info."""
    n = helper.make_node
    nodes = [n("Conv", ["image", "w_dw"], ["c"], name="dw", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4,
               group=group),
             n("Relu", ["c"], ["r"], name="relu"), n("Flatten", ["r"], ["f"], name="flatten"),
             n("Gemm", ["f", "w_fc", "b_fc"], ["out"], name="fc", transB=1)]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 8, 6, 6]),
              helper.make_tensor_value_info("w_dw", TensorProto.FLOAT, None),
              helper.make_tensor_value_info("b_fc", TensorProto.FLOAT, [5])]
    infos = [helper.make_tensor_value_info("w_fc", TensorProto.FLOAT, None)]
    if conv_shape:
        infos.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 8, 3, 3]))
    graph = helper.make_graph(nodes, "weightless", inputs,
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 5] if out_shape else None)],
                              value_info=infos)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def test_weightless_depthwise_conv_and_gemm_give_hand_derived_layers(tmp_path):
    """Weights without values or shapes: [8, 1, 3, 3] from the input's 8 channels, group 8, kernel_shape and the
    output's 8 channels; [5, 72] from the flattened 8x3x3 input and the output's 5 features."""
    w = read_onnx(_weightless_model(tmp_path / "w.onnx"), weight_bits=4)
    dw, fc = w.blocks[0].nodes
    assert dw.layer == ConvLayer(8, 8, 6, 6, 3, 2, 8) and dw.layer.kind == "depthwise"
    assert (dw.layer.macs, dw.layer.weight_count) == (8 * 9 * 3 * 3, 8 * 9)  # 648, 72
    assert fc.layer == ConvLayer(72, 5, 1, 1) and (fc.layer.macs, fc.layer.weight_count) == (72 * 5, 360)
    assert (dw.weight_bits, fc.weight_bits) == (4, 4)
    assert graph_network_cost(w, "edge_tpu_quad", allocation="greedy").cost.exits[0].cum_macs == 648 + 360


@pytest.mark.parametrize("kwargs, message", [
    ({"conv_shape": False}, "node 'dw' (Conv): the weight 'w_dw' has no shape and shape inference left the output's "
                            "channels unknown"),
    ({"out_shape": False}, "node 'fc' (Gemm): the weight 'w_fc' has no shape and shape inference left the output's "
                           "channels unknown"),
    ({"group": 3}, "node 'dw' (Conv): the weight 'w_dw' has no shape and the input's 8 channels do not split into 3 "
                   "groups"),
])
def test_a_weight_whose_shape_cannot_be_derived_names_the_node(tmp_path, monkeypatch, capsys, kwargs, message):
    path = _weightless_model(tmp_path / "w.onnx", **kwargs)
    assert message in _one_line_error(monkeypatch, capsys, "--onnx", path)
