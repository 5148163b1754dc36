"""Training speed (``benchmarks/run.py training``).

* QAT overhead: training images/s of the same width-0.5 backbone in float and with W8A8
  fake quantization (target: QAT at most 1.6x slower);
* cached features: training images/s of an exit head on cached block outputs against
  running the frozen quantized backbone up to the mount point for every batch (target: at
  least 10x faster), at a shallow, a middle and a deep mount point.
"""

from __future__ import annotations

import copy
import time

import pandas as pd
import torch

from eenas.arch import Precision
from eenas.models.backbone import Backbone
from eenas.models.heads import build_head
from eenas.models.spec import mobilenet_v2_spec
from eenas.quant import calibrate, quantize_backbone

BATCH = 128
STEPS = 8
WIDTH = 0.5


def _images_per_second(step, steps: int = STEPS) -> float:
    step()  # warm-up (and quantizer initialisation)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - start)


def _train_step(model, forward, x, y):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

    def step():
        loss = torch.nn.functional.cross_entropy(forward(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def qat_overhead(x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    torch.manual_seed(0)
    float_model = Backbone(10, WIDTH).to(memory_format=torch.channels_last).train()
    qat_model = quantize_backbone(copy.deepcopy(float_model), Precision(8, 8)).train()
    calibrate(qat_model, x)
    rates = {name: _images_per_second(_train_step(m, m, x, y)) for name, m in
             (("float", float_model), ("QAT W8A8", qat_model))}
    ratio = rates["float"] / rates["QAT W8A8"]
    return [
        {"benchmark": "training", "metric": f"{name} backbone training", "value": rate, "unit": "images/s",
         "target": ""} for name, rate in rates.items()
    ] + [{"benchmark": "training", "metric": "QAT slowdown vs float", "value": ratio, "unit": "x",
          "target": "<= 1.6"}]


def cached_feature_speedup(x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    torch.manual_seed(0)
    spec = mobilenet_v2_spec(WIDTH)
    backbone = quantize_backbone(Backbone(10, WIDTH), Precision(8, 8)).eval()
    calibrate(backbone, x)
    for p in backbone.parameters():
        p.requires_grad_(False)
    rows = []
    for mount in (3, 7, 13):
        block = spec.block(mount)
        head = build_head("pool_fc", block.out_channels, block.out_size, 10)
        with torch.no_grad():
            cached = backbone.taps(x, [mount])[0][mount].half()

        def through_backbone(batch, mount=mount, head=head):
            with torch.no_grad():
                feats = backbone.features[: mount + 1](batch)
            return head(feats)

        def from_cache(_batch, head=head, cached=cached):
            return head(cached.float())

        fast = _images_per_second(_train_step(head, from_cache, x, y), steps=4 * STEPS)
        slow = _images_per_second(_train_step(head, through_backbone, x, y))
        rows.append({"benchmark": "training", "metric": f"head at block {mount}: cached features vs backbone",
                     "value": fast / slow, "unit": "x faster", "target": ">= 10"})
    return rows


def run() -> pd.DataFrame:
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    return pd.DataFrame(qat_overhead(x, y) + cached_feature_speedup(x, y))


if __name__ == "__main__":
    print(run().to_markdown(index=False, floatfmt=".4g"))
