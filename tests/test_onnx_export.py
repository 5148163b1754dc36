"""``eenas export``: the ONNX graphs, their Q/DQ quantization and onnxruntime's parity with PyTorch."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from eenas.arch import arch_from_dict  # noqa: E402
from eenas.cli import main  # noqa: E402
from eenas.export import ExportResult, export, write_manifest  # noqa: E402
from eenas.export.run import split_images, trained_network  # noqa: E402
from tests.conftest import arch_dict, write_arch  # noqa: E402

ALL_HEADS = [{"after_block": 2, "head": "gap_fc", "threshold": 0.9},
             {"after_block": 3, "head": "pool_fc", "threshold": 0.9},
             {"after_block": 7, "head": "conv_pool_fc", "threshold": 0.85},
             {"after_block": 12, "head": "dsconv_pool_fc", "threshold": 0.8}]


def _arch(backbone_bits: int, exit_bits: int):
    quant = {"backbone": {"weights": backbone_bits, "activations": backbone_bits},
             "exits": {"weights": exit_bits, "activations": exit_bits}}
    return arch_from_dict(arch_dict(exits=ALL_HEADS, quant=quant))


@pytest.mark.parametrize("bits", [(8, 8), (4, 2)])
def test_onnxruntime_agrees_with_pytorch_on_the_test_split(tiny_pipeline, tmp_path, bits):
    arch = _arch(*bits)
    result = export(arch, tiny_pipeline, tmp_path)
    p = result.parity
    assert p.samples == len(tiny_pipeline.splits.test) > 100
    assert p.decisions_agree >= 0.999
    # A few activations round the other way (onnxruntime sums in another order) and the change travels on, at
    # any bit-width: how many depends on the trained weights, so on the CPU (on an AMD EPYC 5 of the 400 test
    # samples of the (4, 2) net differ by more than one step at exits 3-5, none elsewhere).
    assert min(p.within_step) >= 0.95
    manifest = json.loads(result.manifest.read_text())
    assert [e["output"] for e in manifest["exits"]] == ["exit_b2", "exit_b3", "exit_b7", "exit_b12", "final"]
    assert [e["threshold"] for e in manifest["exits"]] == [0.9, 0.9, 0.85, 0.8, None]
    assert manifest["quantization"]["exits"] == {"weights": bits[1], "activations": bits[1]}


def test_manifest_input_formula_is_the_one_training_computes(tiny_pipeline, tmp_path):
    """A deployment normalizing as the manifest says feeds the graph the very floats PyTorch was checked on."""
    arch = _arch(8, 8)
    files = ExportResult(tmp_path / "model.onnx", tuple(tmp_path / f"stage_{i}.onnx" for i in range(1, 6)),
                         tuple(f"feature_{i}" for i in range(1, 5)))  # the manifest alone: no graph needed
    manifest = json.loads(write_manifest(arch, files, {}).read_text())["input"]
    assert manifest["normalization"].startswith("(pixel - mean) / std in float32")
    mean, std = (np.asarray(manifest[k], dtype=np.float32).reshape(1, 3, 1, 1) for k in ("mean", "std"))
    pixels = tiny_pipeline.splits.test.images.numpy().astype(np.float32)
    np.testing.assert_array_equal((pixels - mean) / std, split_images(tiny_pipeline).numpy())
    # the textbook (pixel / 255 - mean) / std is another float: on CIFAR-10, 468 of the 768 channel values differ
    p = np.arange(256, dtype=np.float32).reshape(1, 256)
    m01, s01 = (np.float32([0.4914, 0.4822, 0.4465]).reshape(3, 1), np.float32([0.2470, 0.2435, 0.2616]).reshape(3, 1))
    assert np.sum((p / np.float32(255) - m01) / s01 != (p - m01 * np.float32(255)) / (s01 * np.float32(255))) == 468


def test_graph_is_qdq_with_clip_below_8_bits_and_named_after_the_arch(tiny_pipeline, tmp_path):
    arch = _arch(8, 4)
    files = export(arch, tiny_pipeline, tmp_path).files
    graph = onnx.load(str(files.model)).graph
    assert [o.name for o in graph.output] == ["exit_b2", "exit_b3", "exit_b7", "exit_b12", "final"]
    parts = {n.name.split(".")[0] if not n.name.startswith("b") or ".exit" not in n.name
             else n.name.rsplit(".", 1)[0] for n in graph.node}
    assert {"stem", "final", "b1", "b17", "b2.exit", "b12.exit"} <= parts
    producers = {o: n for n in graph.node for o in n.output}
    code_clips = [n for n in graph.node if n.op_type == "Clip" and producers[n.input[0]].op_type == "QuantizeLinear"]
    assert code_clips and all(".exit." in n.name for n in code_clips)  # only the 4-bit exits clip their int8 codes
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert all(producers[c.input[1]].op_type == "DequantizeLinear" for c in convs)


def test_stage_graphs_chain_to_the_whole_graph(tiny_pipeline, tmp_path):
    arch = _arch(8, 8)
    files = export(arch, tiny_pipeline, tmp_path).files
    x = split_images(tiny_pipeline)[:16].numpy()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    whole = ort.InferenceSession(str(files.model), options).run(None, {"image": x})
    feed = {"image": x}
    for i, path in enumerate(files.stages):
        session = ort.InferenceSession(str(path), options)
        outputs = session.run(None, feed)
        np.testing.assert_array_equal(outputs[0], whole[i])
        if len(outputs) > 1:
            feed = {session.get_outputs()[1].name: outputs[1]}
    assert len(files.stages) == len(arch.exits) + 1
    assert trained_network(arch, tiny_pipeline).mounts == [2, 3, 7, 12]


def test_cli_export_end_to_end(tmp_path, cache_dir, monkeypatch, capsys):
    arch = write_arch(tmp_path / "arch.json")
    monkeypatch.setattr(sys, "argv", ["eenas", "export", "--arch", str(arch), "--out", str(tmp_path / "onnx"),
                                      "--budget", "tiny", "--cache-dir", str(cache_dir), "--device", "cpu"])
    main()
    out = capsys.readouterr().out
    assert "exit decisions agree on 100.00%" in out
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == [
        "manifest.json", "model.onnx", "stage_1.onnx", "stage_2.onnx", "stage_3.onnx"]


@pytest.mark.parametrize("signed", [True, False])
def test_onnxruntime_quantizes_as_lsq_at_and_beside_every_rounding_boundary(signed):
    """QuantizeLinear divides by the step (x * (1/s) would differ on a sixth of these) and rounds half to even."""
    from onnx import TensorProto, helper

    from eenas.quant.lsq import fake_quantize, qrange

    qn, qp = qrange(8, signed)
    step = np.float32(0.0213)
    halves = ((np.arange(qn - 1, qp + 1, dtype=np.float32) + np.float32(0.5)) * step).astype(np.float32)
    x = np.concatenate([halves, np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf)])
    dtype = TensorProto.INT8 if signed else TensorProto.UINT8
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [float(step)]), helper.make_tensor("z", dtype, [], [0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"x": x})[0]
    ours = fake_quantize(torch.from_numpy(x), torch.tensor([step]), qn, qp).numpy()
    np.testing.assert_array_equal(theirs, ours)
    reciprocal = np.clip(np.rint(x * (np.float32(1) / step)), qn, qp) * step
    assert np.mean(reciprocal != ours) > 0.1


def test_export_after_a_joint_finetune_writes_the_finetuned_network(tiny_pipeline, tmp_path):
    arch = arch_from_dict(arch_dict())
    result = export(arch, tiny_pipeline, tmp_path, finetune="joint")
    assert result.parity.decisions_agree >= 0.999
    assert json.loads(result.manifest.read_text())["arch"]["training"]["finetune"] == "joint"
    tuned, separate = trained_network(arch, tiny_pipeline, joint=True), trained_network(arch, tiny_pipeline)
    assert any(not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), separate.state_dict().values()))
    with torch.no_grad():  # the loaded weights are the fine-tune's: they predict what its cached test logits say
        ours = tuned(split_images(tiny_pipeline))
    for logits, cached in zip(ours, tiny_pipeline.arch_logits(arch, joint=True)):
        assert (logits.argmax(1) == cached.test.argmax(1)).float().mean() >= 0.99


def test_a_network_that_ends_at_its_last_exit_exports_without_what_follows_it(tiny_pipeline, tmp_path):
    """``final``: no classifier output, no stage after the last exit, and none of the later blocks' weights."""
    arch = arch_from_dict(arch_dict(exits=[ALL_HEADS[0], {"after_block": 7, "head": "conv_pool_fc", "final": True}]))
    for finetune in ("none", "joint"):
        result = export(arch, tiny_pipeline, tmp_path / finetune, finetune=finetune)
        assert result.parity.decisions_agree >= 0.999 and len(result.files.stages) == 2
        manifest = json.loads(result.manifest.read_text())
        assert [(e["output"], e["threshold"]) for e in manifest["exits"]] == [("exit_b2", 0.9), ("exit_b7", 0.0)]
        assert manifest["exits"][-1]["stage_feature_output"] is None
        graph = onnx.load(str(result.files.model)).graph
        assert [o.name for o in graph.output] == ["exit_b2", "exit_b7"]
        parts = {n.name.split(".")[0] for n in graph.node}
        assert "b7" in parts and not parts & {"b8", "b17", "final"}
        assert trained_network(arch, tiny_pipeline).ends
    full = sum(p.numel() for p in trained_network(arch, tiny_pipeline).parameters())
    kept = sum(int(np.prod(t.dims)) for t in graph.initializer)
    assert kept < full / 2  # the blocks after 7 hold most of the backbone's weights
