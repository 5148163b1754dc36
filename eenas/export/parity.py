"""Does onnxruntime compute what PyTorch computes?  Exit decisions and logits on one split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eenas.export.onnx_graph import INPUT
from eenas.models.early_exit import EarlyExitNet

_PASS_THROUGH = ("MaxPool", "Flatten", "Reshape", "Identity")


@dataclass(frozen=True)
class Parity:
    """Agreement of onnxruntime with PyTorch on ``samples`` images."""

    samples: int
    decisions_agree: float  # fraction of samples leaving at the same exit with the same class
    max_logit_diff: tuple[float, ...]  # per exit, final last
    logit_step: tuple[float, ...]  # per exit: one quantum of the classifier's input times its largest weight
    within_step: tuple[float, ...]  # per exit: fraction of samples whose logits all differ by at most that step

    def to_dict(self) -> dict:
        return {"samples": self.samples, "decisions_agree": self.decisions_agree,
                "max_logit_diff": list(self.max_logit_diff), "logit_step": list(self.logit_step),
                "within_step": list(self.within_step)}


def decisions(logits: list[np.ndarray], thresholds: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the exit it leaves at (first confident one, else the last) and the class predicted there."""
    probs = [torch.from_numpy(lg).float().softmax(-1) for lg in logits]
    conf = torch.stack([p.max(-1).values for p in probs]).numpy()
    take = np.ones(conf.shape, dtype=bool)
    take[:-1] = conf[:-1] >= np.asarray(thresholds)[:, None]
    leave = take.argmax(axis=0)
    preds = np.stack([lg.argmax(-1) for lg in logits])
    return leave, preds[leave, np.arange(conf.shape[1])]


def logit_steps(model_path: Path) -> tuple[float, ...]:
    """Per output: the step of the quantized tensor its last Gemm reads times that Gemm's largest weight.

    One activation rounded to the neighbouring level (PyTorch and onnxruntime sum in different
    orders, so a value on a rounding boundary may go either way) moves a logit by at most this.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    producer = {o: n for n in graph.node for o in n.output}
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)

    def dequantized(name: str) -> onnx.NodeProto:
        node = producer[name]
        while node.op_type in _PASS_THROUGH:
            node = producer[node.input[0]]
        return node

    steps = []
    for out in graph.output:
        gemm = dequantized(out.name)
        act, weight = dequantized(gemm.input[0]), dequantized(gemm.input[1])
        name = weight.input[0]  # DequantizeLinear <- [Clip <-] QuantizeLinear <- the float weight
        while name not in consts:
            name = producer[name].input[0]
        w_float = consts[name]
        steps.append(float(np.max(consts[act.input[1]]) * np.abs(w_float).max()))
    return tuple(steps)


@torch.no_grad()
def check_parity(net: EarlyExitNet, model_path: Path, images: torch.Tensor, thresholds: list[float],
                 batch_size: int = 256) -> Parity:
    """Run ``net`` (CPU, eval) and ``model_path`` (onnxruntime, one thread) on normalized ``images``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    # The graph as written: onnxruntime's optimizer would fuse Q/DQ pairs into integer kernels with int32
    # biases, another arithmetic than the QAT model's (float biases), and measure that instead.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    net = net.cpu().float().eval()
    torch_out, onnx_out = [], []
    for batch in images.split(batch_size):
        torch_out.append([t.numpy() for t in net(batch.contiguous())])
        onnx_out.append(session.run(None, {INPUT: batch.contiguous().numpy()}))
    ours = [np.concatenate([b[i] for b in torch_out]) for i in range(len(torch_out[0]))]
    theirs = [np.concatenate([b[i] for b in onnx_out]) for i in range(len(onnx_out[0]))]
    (leave_t, pred_t), (leave_o, pred_o) = decisions(ours, thresholds), decisions(theirs, thresholds)
    agree = float(np.mean((leave_t == leave_o) & (pred_t == pred_o)))
    diffs = [np.abs(a - b).max(axis=1) for a, b in zip(ours, theirs)]
    steps = logit_steps(model_path)
    within = tuple(float(np.mean(d <= s)) for d, s in zip(diffs, steps))
    return Parity(len(images), agree, tuple(float(d.max()) for d in diffs), steps, within)
