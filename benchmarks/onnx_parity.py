"""Where onnxruntime and PyTorch part on an exported arch, and which of them exact arithmetic sides with.

    python benchmarks/onnx_parity.py --arch A.json --cache-dir DIR [--data-dir D] [--exact 1000]

Loads the arch's trained network (trains nothing that is not cached: give the cache that holds it),
exports it and runs the test split through PyTorch and through onnxruntime (as ``eenas export``
checks it). For every sample whose exit decision differs it prints the first activation quantizer
(in graph order) whose output differs, the producing operator, the two quantizer inputs in units
of the step, and the distance in float32 ulps between them. It then replays the first ``--exact``
samples and the differing ones in float64 on the same quantized weights (an almost exact
reference: the float32 roundings of the sums are gone) and counts the decisions where PyTorch
float32 and onnxruntime each differ from it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from eenas.arch import load_arch
from eenas.cli.options import make_pipeline
from eenas.export import export_arch
from eenas.export.onnx_graph import INPUT
from eenas.export.parity import decisions
from eenas.export.qdq import FrozenQuantizer, frozen_copy
from eenas.export.run import split_images, trained_network
from eenas.quant.modules import QConvBN, QLinear

BATCH = 250


def _activation_pairs(model) -> list[tuple[str, str, str, str]]:
    """Per activation DequantizeLinear (per tensor), in graph order: its name, the operator feeding its
    QuantizeLinear (through a Clip), and the tensors before Q and after DQ."""
    producer = {o: n for n in model.graph.node for o in n.output}
    pairs = []
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or any(a.name == "axis" for a in node.attribute):
            continue
        q = producer[node.input[0]]
        while q.op_type != "QuantizeLinear":
            q = producer[q.input[0]]
        src = producer.get(q.input[0])
        while src is not None and src.op_type == "Clip":
            src = producer[src.input[0]]
        op = "input" if src is None else src.op_type + "".join(
            f"(group={a.i})" for a in src.attribute if a.name == "group" and a.i > 1)
        pairs.append((node.name, op, q.input[0], node.output[0]))
    return pairs


def _session(model: onnx.ModelProto, extra: list[str]) -> ort.InferenceSession:
    have = {o.name for o in model.graph.output}
    for name in extra:
        if name not in have:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            have.add(name)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def first_differences(net: nn.Module, model_path: Path, images: torch.Tensor) -> list[str]:
    """One line per image: the first activation whose quantized value differs between PyTorch and ORT."""
    frozen = frozen_copy(net)
    captured: list[tuple[float, np.ndarray, np.ndarray]] = []
    for m in frozen.modules():
        if isinstance(m, FrozenQuantizer) and not m.per_channel:
            m.register_forward_hook(lambda m, i, o: captured.append((float(m.scale), i[0].numpy().copy(), o.numpy())))
    pairs = _activation_pairs(onnx.load(str(model_path)))
    session = _session(onnx.load(str(model_path)), [t for p in pairs for t in p[2:]])
    with torch.no_grad():
        frozen(images)
    ort_out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {INPUT: images.numpy()})))
    lines = []
    for j in range(len(images)):
        line = "no quantized activation differs"
        for (scale, before, after), (name, op, ort_before, ort_after) in zip(captured, pairs):
            flips = np.nonzero((after[j] != ort_out[ort_after][j]).ravel())[0]
            if len(flips):
                k = flips[0]
                t, o = before[j].ravel()[k], ort_out[ort_before][j].ravel()[k]
                ulps = abs(int(np.float32(t).view(np.int32)) - int(np.float32(o).view(np.int32)))
                line = (f"{name} after {op}: {len(flips)} of {after[j].size} values one level apart; first at "
                        f"x/step {t / scale:.8g} (PyTorch) vs {o / scale:.8g} (onnxruntime), {ulps} float32 ulps apart")
                break
        lines.append(line)
    return lines


class _Fixed(nn.Module):
    """A conv or linear layer with its quantized (BN-folded) float32 weights as constants."""

    def __init__(self, m: QConvBN | QLinear) -> None:
        super().__init__()
        with torch.no_grad():
            weight, bias = m.folded() if isinstance(m, QConvBN) else (m.linear.weight, m.linear.bias)
            self.weight = nn.Parameter(m.weight_quant(weight).clone())
            self.bias = nn.Parameter(bias.clone())
        c = m.conv if isinstance(m, QConvBN) else None
        self.conv = None if c is None else {"stride": c.stride, "padding": c.padding, "dilation": c.dilation,
                                            "groups": c.groups}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return nn.functional.linear(x, self.weight, self.bias)
        return nn.functional.conv2d(x, self.weight, self.bias, **self.conv)


def float64_replay(net: nn.Module) -> nn.Module:
    """The quantized network with its float32 weights, steps and biases, computed in float64."""
    model = frozen_copy(net)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, (QConvBN, QLinear)):
                setattr(parent, name, _Fixed(child))
    return model.double()


def _logits(fn, images: torch.Tensor) -> list[np.ndarray]:
    outs = [[t.float().numpy() for t in fn(batch)] for batch in images.split(BATCH)]
    return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=Path, required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--exact", type=int, default=1000, help="samples replayed in float64 (plus the differing)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    arch = load_arch(args.arch)
    t = arch.training
    pipe = make_pipeline(arch.dataset, t.budget, arch.backbone.width_mult, args.data_dir, args.cache_dir, "cpu", t.seed,
                         t.amp, arch.backbone)
    net = trained_network(arch, pipe)
    images = split_images(pipe)
    thresholds = [e.threshold for e in arch.exits]
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        model_path = export_arch(arch, net, Path(tmp)).model
        session = _session(onnx.load(str(model_path)), [])
        ours = _logits(net, images)
        theirs = _logits(lambda b: [torch.from_numpy(x) for x in session.run(None, {INPUT: b.numpy()})], images)
        (lt, pt), (lo, po) = decisions(ours, thresholds), decisions(theirs, thresholds)
        differ = np.nonzero((lt != lo) | (pt != po))[0]
        print(f"exit decisions differ on {len(differ)} of {len(images)} test images")
        for i, line in zip(differ, first_differences(net, model_path, images[differ])):
            print(f"  {i}: {line}")
        chosen = np.unique(np.r_[np.arange(min(args.exact, len(images))), differ])
        exact = decisions(_logits(float64_replay(net), images[chosen].double()), thresholds)
        for name, (leave, pred) in (("PyTorch float32", (lt[chosen], pt[chosen])),
                                    ("onnxruntime", (lo[chosen], po[chosen]))):
            off = chosen[(leave != exact[0]) | (pred != exact[1])]
            print(f"{name} against the float64 replay on {len(chosen)} images: {len(off)} decisions differ "
                  f"({', '.join(map(str, off))})")


if __name__ == "__main__":
    main()
