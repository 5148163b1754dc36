"""Training speed (``benchmarks/run.py training``).

* training paths: images/s of float pretraining and of W8A8 QAT on the same width-0.5 backbone
  for the float32 NCHW reference, float32 channels_last and bfloat16 autocast, then the test
  accuracy the reference and the path ``--amp auto`` picks on this machine reach after the same
  short schedule on a CIFAR-10 subset ($EENAS_DATA; synthetic data without it), so that speed
  gained is not accuracy lost;
* widths: float training images/s of the adopted path at widths 0.5, 0.75 and 1.0, which
  sizes the budgets' epochs;
* QAT overhead: W8A8 against float on the adopted path (target: at most 1.6x slower);
* the data path: augmented, normalised batches per second against the training rate;
* cached features: training images/s of an exit head on cached block outputs against
  running the frozen quantized backbone up to the mount point for every batch (target: at
  least 10x faster), at a shallow, a middle and a deep mount point.
"""

from __future__ import annotations

import copy
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from eenas.arch import Precision
from eenas.data import Batches, load_splits
from eenas.errors import EenasError
from eenas.models.backbone import Backbone
from eenas.models.heads import build_head
from eenas.models.spec import mobilenet_v2_spec
from eenas.quant import calibrate, quantize_backbone
from eenas.train.loops import autocast, fit, predict
from eenas.train.pipeline import resolve_amp

BATCH = 128
STEPS = 8
WIDTH = 0.5
SCHEDULE_TRAIN, SCHEDULE_TEST, SCHEDULE_EPOCHS, SCHEDULE_LR = 8192, 2000, 2, 0.15
# A 128-step schedule is chaotic: float rounding alone (NCHW against channels_last, the same
# function) moved one seed's accuracy by 6 points, so each path reports a mean over seeds.
SCHEDULE_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class TrainingPath:
    name: str
    channels_last: bool
    amp: torch.dtype | None

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def forward(self, model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return lambda x: model(x.contiguous(memory_format=fmt))


REFERENCE = TrainingPath("fp32 NCHW (reference)", channels_last=False, amp=None)
PATHS = (
    REFERENCE,
    TrainingPath("fp32 channels_last", channels_last=True, amp=None),
    TrainingPath("bf16 autocast channels_last", channels_last=True, amp=torch.bfloat16),
)


def adopted_path() -> TrainingPath:
    """What the pipeline trains with on this machine (``--amp auto``, always channels_last)."""
    amp = resolve_amp("auto", torch.device("cpu"))
    return next(p for p in PATHS if p.channels_last and p.amp == amp)


def images_per_second(step: Callable[[], None], steps: int = STEPS, batch: int = BATCH, warmup: int = 1) -> float:
    """Images/s of ``step`` after ``warmup`` calls (quantizer initialisation, cuDNN autotuning); waits for the GPU."""
    for _ in range(warmup):
        step()
    _synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize()
    return steps * batch / (time.perf_counter() - start)


def _synchronize() -> None:
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def train_step(model: torch.nn.Module, forward: Callable, x: torch.Tensor, y: torch.Tensor,
               amp: torch.dtype | None = None) -> Callable[[], None]:
    """One SGD step of ``model`` on ``(x, y)`` through ``forward``, as a closure to time."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

    def step() -> None:
        with autocast(x.device, amp):
            out = forward(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def path_speeds(x: torch.Tensor, y: torch.Tensor) -> tuple[list[dict], dict[str, float]]:
    rows, rates = [], {}
    for path in PATHS:
        torch.manual_seed(0)
        float_model = path.prepare(Backbone(10, WIDTH)).train()
        qat_model = quantize_backbone(copy.deepcopy(float_model), Precision(8, 8)).train()
        calibrate(qat_model, x)
        for kind, model in (("float", float_model), ("QAT W8A8", qat_model)):
            rate = images_per_second(train_step(model, path.forward(model), x, y, path.amp))
            rates[f"{path.name} {kind}"] = rate
            rows.append({"benchmark": "training", "metric": f"{path.name}: {kind} training", "value": rate,
                         "unit": "images/s", "target": ""})
    adopted = adopted_path().name
    rows.append({"benchmark": "training", "metric": f"QAT slowdown vs float ({adopted})",
                 "value": rates[f"{adopted} float"] / rates[f"{adopted} QAT W8A8"], "unit": "x", "target": "<= 1.6"})
    return rows, rates


def width_speeds(x: torch.Tensor, y: torch.Tensor, widths: tuple[float, ...] = (0.5, 0.75, 1.0)) -> list[dict]:
    """Float training speed of the adopted path per width: what sizes a budget's epochs."""
    path, rows = adopted_path(), []
    for width in widths:
        torch.manual_seed(0)
        model = path.prepare(Backbone(10, width)).train()
        rows.append({"benchmark": "training", "metric": f"{path.name}: float training, width {width}",
                     "value": images_per_second(train_step(model, path.forward(model), x, y, path.amp)),
                     "unit": "images/s", "target": ""})
    return rows


@functools.cache
def _schedule_data():
    try:
        splits = load_splits("cifar10", os.environ.get("EENAS_DATA"))
        name = "cifar10"
    except EenasError:
        splits, name = load_splits("synthetic", synthetic_size=SCHEDULE_TRAIN), "synthetic"
    return name, splits.train.subset(SCHEDULE_TRAIN), splits.test.subset(SCHEDULE_TEST)


def short_schedule_accuracy(path: TrainingPath, dataset: str, train, test, seed: int) -> float:
    """Test accuracy after the same seeded short one-cycle schedule on ``path``."""
    torch.manual_seed(seed)
    model = path.prepare(Backbone(10, WIDTH))
    cpu = torch.device("cpu")
    fit(model, Batches(train, dataset, BATCH, cpu, shuffle=True, augment=True, seed=seed), SCHEDULE_EPOCHS,
        SCHEDULE_LR, one_cycle=True, forward=path.forward(model), amp=path.amp, desc=path.name)
    logits = predict(path.forward(model), Batches(test, dataset, 500, cpu), amp=path.amp)[0]
    return (logits.argmax(1) == test.labels).float().mean().item()


def path_accuracy() -> list[dict]:
    dataset, train, test = _schedule_data()
    schedule = (f"{SCHEDULE_EPOCHS} epochs on {len(train)} {dataset} images, {len(test)} test images, "
                f"seeds {','.join(map(str, SCHEDULE_SEEDS))}")
    rows = []
    for path in dict.fromkeys([REFERENCE, adopted_path()]):  # the same path once where they coincide
        accs = torch.tensor([short_schedule_accuracy(path, dataset, train, test, s) for s in SCHEDULE_SEEDS])
        rows += [{"benchmark": "training", "metric": f"{path.name}: {stat} test accuracy after {schedule}",
                  "value": 100 * value, "unit": "%", "target": ""}
                 for stat, value in (("mean", accs.mean().item()), ("std of", accs.std().item()))]
    return rows


def data_path(train_rate: float) -> list[dict]:
    """Batches per second of the on-device augmentation pipeline, as images/s against training."""
    _, train, _ = _schedule_data()
    batches = Batches(train, "cifar10", BATCH, torch.device("cpu"), shuffle=True, augment=True)
    start = time.perf_counter()
    seen = sum(len(y) for _, y in batches)
    rate = seen / (time.perf_counter() - start)
    return [{"benchmark": "training", "metric": "data path (crop, flip, normalise): images/s", "value": rate,
             "unit": "images/s", "target": ""},
            {"benchmark": "training", "metric": "data path share of a float training step", "value":
             100 * train_rate / rate, "unit": "%", "target": "< 10"}]


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

        fast = images_per_second(train_step(head, from_cache, x, y), steps=4 * STEPS)
        slow = images_per_second(train_step(head, through_backbone, x, y))
        rows.append({"benchmark": "training", "metric": f"head at block {mount}: cached features vs backbone",
                     "value": fast / slow, "unit": "x faster", "target": ">= 10"})
    return rows


def run() -> pd.DataFrame:
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    speeds, rates = path_speeds(x, y)
    train_rate = rates[f"{adopted_path().name} float"]
    return pd.DataFrame(speeds + width_speeds(x, y) + path_accuracy() + data_path(train_rate)
                        + cached_feature_speedup(x, y))


if __name__ == "__main__":
    print(run().to_markdown(index=False, floatfmt=".4g"))
