"""The one prepared device check (``make gpu-check``): CUDA code paths and real training speed.

Device time is short (minutes per task), so this is one script with its own time budget:

1. **paths**: the tiny pipeline end to end on the device, in the dtype ``--amp auto`` picks
   there (pretraining, QAT W8A8, exit heads, ``evaluate_arch`` of a two-exit arch), checked to
   learn (synthetic data, accuracy well above chance) and to agree with the cost model;
2. **speed**: float and W8A8 QAT training images/s of the ``standard`` budget's backbone
   (width 1.0, batch 128, channels_last) in float32 and bfloat16 autocast;
3. **projection**: the ``standard`` budget's pretraining plus QAT time from those rates
   (the budget itself takes longer than a device session; the projection says how long), and the
   float pretraining of ``paper_mbv2`` (195 M MACs an image, out of reach on 2 CPU cores) at the
   shipped weights' epochs, whose registry entry waits for a GPU.

Writes ``gpu_check.json`` and ``gpu_check.md`` into ``$OUT`` (the device tool's result folder)
or ``--out``. ``--device cpu --steps 2`` runs the same on a CPU: the test suite does, so the
script cannot rot between the rare sessions that have a GPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from bench_training import images_per_second, train_step  # benchmarks/ is on the path when run as a script

from eenas.arch import Arch, BackboneConfig, ExitConfig, Precision
from eenas.evaluate import evaluate_arch
from eenas.hardware import cost_arch
from eenas.io import write_json, write_text
from eenas.models.registry import get_backbone
from eenas.quant import calibrate, quantize_backbone
from eenas.train import Pipeline, TrainConfig, get_budget
from eenas.train.pipeline import resolve_amp

BATCH = 128
TRAIN_IMAGES = 45_000
WEIGHTS_EPOCHS = 120  # the pretraining of the shipped weights (docs/training.md: Pretrained weights)
# Two exits of different head types: every training stage (backbone, QAT, heads) runs.
ARCH = Arch("synthetic", BackboneConfig("mobilenet_v2", 0.25),
            (ExitConfig(3, "pool_fc", 0.9), ExitConfig(7, "conv_pool_fc", 0.85)))


def check_paths(device: str, cache_dir: Path) -> dict:
    """Every training stage and evaluate on ``device``; raises if one fails or does not learn."""
    start = time.perf_counter()
    pipe = Pipeline(TrainConfig("synthetic", get_budget("tiny"), 0.25, cache_dir=cache_dir, device=device))
    result = evaluate_arch(ARCH, pipe)
    static = result.static_accuracy
    if static < 0.5 or result.accuracy < 0.3:  # 10 classes: chance is 0.1
        raise SystemExit(f"gpu-check: training on {device} did not learn (static {static:.3f}, "
                         f"early-exit {result.accuracy:.3f})")
    cost = cost_arch(ARCH)
    if list(result.exits["cum_cycles"]) != [e.cum_latency_cycles for e in cost.exits]:
        raise SystemExit("gpu-check: evaluate's cost table disagrees with the cost model")
    return {"device": str(pipe.device), "amp": "fp32" if pipe.amp is None else "bf16",
            "static_w8a8_test_accuracy": round(static, 4), "early_exit_test_accuracy": round(result.accuracy, 4),
            "et_ratio": round(result.et_ratio, 4), "trained": list(result.trained),
            "seconds": round(time.perf_counter() - start, 1)}


def training_speed(device: str, width: float, steps: int, batch: int = BATCH, backbone: str = "mobilenet_v2",
                   qat: bool = True) -> list[dict]:
    """Training images/s of ``backbone`` (at ``width`` where it has that option), float and QAT W8A8."""
    dev = torch.device(device)
    x = torch.randn(batch, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=dev)
    entry = get_backbone(backbone)
    options = {name: option.default for name, option in entry.options.items()}
    if "width_mult" in options:
        options["width_mult"] = width
    rows = []
    for dtype_name, amp in (("fp32", None), ("bf16", torch.bfloat16)):
        torch.manual_seed(0)
        model = entry.build(10, 0.0, options).to(dev, memory_format=torch.channels_last).train()
        models = [("float", model)]
        if qat:
            quantized = quantize_backbone(copy.deepcopy(model), Precision(8, 8)).train()
            calibrate(quantized, x)
            models.append(("QAT W8A8", quantized))
        for kind, m in models:
            rate = images_per_second(train_step(m, m, x, y, amp), steps, batch, warmup=2)
            rows.append({"backbone": backbone, "dtype": dtype_name, "training": kind,
                         "width": options.get("width_mult", 1.0), "images_per_s": round(rate, 1)})
    return rows


def weights_projection(rows: list[dict], amp: torch.dtype | None, epochs: int = WEIGHTS_EPOCHS) -> dict:
    """Wall time of a shipped-weights pretraining (``epochs`` on the 45k training images) at the measured rate."""
    dtype = "fp32" if amp is None else "bf16"
    (row,) = [r for r in rows if r["dtype"] == dtype and r["training"] == "float"]
    return {"backbone": row["backbone"], "dtype": dtype, "epochs": epochs,
            "pretrain_min": round(epochs * TRAIN_IMAGES / row["images_per_s"] / 60, 1)}


def projection(rows: list[dict], amp: torch.dtype | None) -> dict:
    """Wall time of the standard budget's pretraining and one QAT fine-tune at the measured rates."""
    b, dtype = get_budget("standard"), "fp32" if amp is None else "bf16"
    rate = {r["training"]: r["images_per_s"] for r in rows if r["dtype"] == dtype}
    pretrain = b.pretrain_epochs * TRAIN_IMAGES / rate["float"]
    qat = b.qat_epochs * TRAIN_IMAGES / rate["QAT W8A8"]
    return {"dtype": dtype, "pretrain_epochs": b.pretrain_epochs, "qat_epochs": b.qat_epochs,
            "pretrain_min": round(pretrain / 60, 1), "qat_min_per_precision": round(qat / 60, 1)}


def environment(device: str) -> dict:
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": device}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per row")
    parser.add_argument("--width", type=float, default=get_budget("standard").width_mult)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--cache-dir", type=Path, default=None, help="training cache (default: a fresh temporary one)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu-check: error: CUDA is not available here (run it on a GPU machine, or pass --device cpu)",
              file=sys.stderr)
        return 2
    report = {"environment": environment(args.device)}
    with tempfile.TemporaryDirectory() as cache:
        report["paths"] = check_paths(args.device, args.cache_dir or Path(cache))
    report["speed"] = training_speed(args.device, args.width, args.steps, args.batch)
    amp = resolve_amp("auto", torch.device(args.device))
    report["standard_projection"] = projection(report["speed"], amp)
    report["paper_mbv2_speed"] = training_speed(args.device, 1.0, args.steps, args.batch, "paper_mbv2", qat=False)
    report["paper_mbv2_projection"] = weights_projection(report["paper_mbv2_speed"], amp)
    write_json(args.out / "gpu_check.json", report)
    text = "\n\n".join([
        "# gpu-check", json.dumps(report["environment"]), json.dumps(report["paths"]),
        pd.DataFrame(report["speed"] + report["paper_mbv2_speed"]).to_markdown(index=False),
        json.dumps(report["standard_projection"]), json.dumps(report["paper_mbv2_projection"]),
    ])
    write_text(args.out / "gpu_check.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
