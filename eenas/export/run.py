"""``eenas export``: train or load what an arch needs, export it, and check it with onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from eenas.arch import Arch
from eenas.data import Batches
from eenas.evaluate import training_record
from eenas.export.onnx_graph import ExportResult, export_arch, require_onnx, write_manifest
from eenas.export.parity import Parity, check_parity
from eenas.models.early_exit import EarlyExitNet
from eenas.train import Pipeline


def trained_network(arch: Arch, pipeline: Pipeline, joint: bool = False) -> EarlyExitNet:
    """The arch's backbone and heads as trained (or loaded) by the pipeline, after the joint fine-tune if ``joint``."""
    if joint and arch.exits:
        return pipeline.joint_network(arch)
    q = arch.quant
    heads = {e.after_block: pipeline.load_head(q.backbone, e.after_block, e.head, q.exits) for e in arch.exits}
    return EarlyExitNet(pipeline.backbone(q.backbone), heads, arch.ends_at_exit).cpu().float().eval()


def split_images(pipeline: Pipeline) -> torch.Tensor:
    """The test split, normalized as in training, on the CPU."""
    batches = Batches(pipeline.splits.test, pipeline.cfg.dataset, 1024, torch.device("cpu"))
    return torch.cat([x.contiguous() for x, _ in batches])


@dataclass(frozen=True)
class Exported:
    files: ExportResult
    manifest: Path
    parity: Parity


def export(arch: Arch, pipeline: Pipeline, out: Path, finetune: str = "none") -> Exported:
    """Export ``arch`` to ``out`` and record onnxruntime's agreement with PyTorch on the test split in the manifest."""
    require_onnx()
    net = trained_network(arch, pipeline, joint=finetune == "joint")
    files = export_arch(arch, net, out)
    thresholds = [e.threshold for e in arch.exits[: arch.n_outputs - 1]]  # the last output takes the rest
    parity = check_parity(net, files.model, split_images(pipeline), thresholds)
    arch = replace(arch, training=training_record(pipeline.cfg, finetune))
    manifest = write_manifest(arch, files, {"parity_test_split": parity.to_dict()})
    return Exported(files, manifest, parity)
