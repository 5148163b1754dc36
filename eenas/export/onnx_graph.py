"""Write an arch's early-exit network as ONNX: the whole graph, one graph per stage and a manifest.

``model.onnx`` maps the (normalized) image to every exit's logits, earliest first and the final
classifier last (a network that ends at its last exit has none, nor the blocks after that exit);
its nodes are named after the arch's parts (``stem``, ``b3``, ``b3.exit``, ``final``), e.g.
``b3.Conv_1``.  ``stage_<i>.onnx`` is what a deployment runs between two exit
decisions: the blocks after the previous exit up to exit i plus head i, reading the previous
stage's feature map and writing exit i's logits and the feature map the next stage reads.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from eenas.arch import Arch
from eenas.data import pixel_normalization
from eenas.export.qdq import frozen_copy
from eenas.hardware.onnx_workload import EXIT_MAPPING_KEY, require  # EXIT_MAPPING_KEY: exits' cores, overlap
from eenas.io import atomic_write, write_json
from eenas.models.early_exit import EarlyExitNet
from eenas.models.spec import INPUT_CHANNELS, INPUT_SIZE

OPSET = 13  # per-axis QuantizeLinear/DequantizeLinear and integer Clip
INPUT = "image"
EXPORT_WRITER = "eenas export"
_SCOPES = ((re.compile(r"^/features\.0/"), "stem"),  # the TorchScript exporter's module scopes
           (re.compile(r"^/features\.(\d+)/"), "b{}"),
           (re.compile(r"^/final/"), "final"),
           (re.compile(r"^/heads\.(\d+)/"), "b{}.exit"))


def require_onnx() -> None:
    """One line, not a traceback, when onnx or onnxruntime is missing."""
    require("onnx", "onnxruntime")


def output_names(arch: Arch) -> list[str]:
    """Graph outputs, earliest exit first: ``exit_b<block>`` per exit, then ``final`` unless the network ends at
    its last exit."""
    return [f"exit_b{e.after_block}" for e in arch.exits] + ([] if arch.ends_at_exit else ["final"])


@dataclass(frozen=True)
class ExportResult:
    model: Path
    stages: tuple[Path, ...]
    features: tuple[str, ...]  # the feature map each stage hands to the next (one per early exit)


def _part(node_name: str) -> str:
    for pattern, fmt in _SCOPES:
        match = pattern.match(node_name)
        if match:
            return fmt.format(*match.groups())
    return "graph"


def _rename(model) -> dict[str, str]:
    """Name nodes ``<part>.<Op>_<k>`` after the arch's part they belong to; returns each part's last output."""
    counts: Counter = Counter()
    last: dict[str, str] = {}
    for node in model.graph.node:
        part = _part(node.name)
        node.name = f"{part}.{node.op_type}_{counts[part, node.op_type]}"
        counts[part, node.op_type] += 1
        last[part] = node.output[0]
    return last


def _save(model, path: Path) -> Path:
    return atomic_write(path, lambda fh: fh.write(model.SerializeToString()))


def export_arch(arch: Arch, net: EarlyExitNet, out: Path) -> ExportResult:
    """Write ``model.onnx`` and the stage graphs of ``net`` (trained for ``arch``) to ``out``."""
    require_onnx()
    import io

    import onnx
    from onnx.utils import Extractor

    names = output_names(arch)
    model = frozen_copy(net)
    image = torch.zeros(1, INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE)
    buffer = io.BytesIO()
    axes = {n: {0: "batch"} for n in [INPUT, *names]}
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, but it exports custom Q/DQ symbolics
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (image,), buffer, dynamo=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=names, dynamic_axes=axes, do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    last = _rename(proto)
    proto.graph.doc_string = f"eenas early-exit network: outputs {', '.join(names)}"
    mapping = {name: {"core": e.core, "overlap": e.overlap} for name, e in zip(names, arch.exits)}
    onnx.helper.set_model_props(proto, {EXIT_MAPPING_KEY: json.dumps(mapping)})
    onnx.checker.check_model(proto)
    out.mkdir(parents=True, exist_ok=True)
    model_path = _save(proto, out / "model.onnx")
    offset = arch.backbone.spec(arch.num_classes).mount_offset  # scope b<N> is features[N]: mount point N - offset
    features = tuple(last[f"b{e.after_block + offset}"] for e in arch.exits[: len(names) - 1])  # handed on
    extractor = Extractor(onnx.shape_inference.infer_shapes(proto))
    stages, source = [], INPUT
    for i, name in enumerate(names):
        outputs = [name, features[i]] if i < len(features) else [name]
        stages.append(_save(extractor.extract_model([source], outputs), out / f"stage_{i + 1}.onnx"))
        source = outputs[-1]
    return ExportResult(model_path, tuple(stages), features)


def write_manifest(arch: Arch, files: ExportResult, extra: dict) -> Path:
    """``manifest.json`` beside the graphs: input format, exits in order with thresholds, bits, the arch."""
    names, stages, features = output_names(arch), files.stages, files.features
    mean, std = (t.flatten().tolist() for t in pixel_normalization(arch.dataset))
    manifest = {
        "written_by": EXPORT_WRITER,
        "input": {"name": INPUT, "shape": ["batch", INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE],
                  "normalization": "(pixel - mean) / std in float32, pixel 0..255 (as in training)",
                  "mean": mean, "std": std},
        "exits": [{"output": name, "after_block": e.after_block if e else None, "head": e.head if e else "classifier",
                   "threshold": e.threshold if e else None, "stage": str(stages[i].name),
                   "stage_input": INPUT if i == 0 else features[i - 1],
                   "stage_feature_output": features[i] if i < len(features) else None}
                  for i, (name, e) in enumerate(zip(names, [*arch.exits, None]))],
        "routing": "a sample leaves at the first exit whose max softmax reaches its threshold; the last output "
                   "takes the rest",
        "quantization": {"backbone": vars(arch.quant.backbone), "exits": vars(arch.quant.exits),
                         "format": "QuantizeLinear [-> Clip to the 4/2-bit range] -> DequantizeLinear on int8/uint8; "
                                   "weights per output channel, activations per tensor, zero points 0"},
        "arch": arch.to_dict(),
        **extra,
    }
    return write_json(files.model.with_name("manifest.json"), manifest)
