"""Training settings: mixed precision, label smoothing and dropout reach the loops and the cache keys."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from eenas.errors import EenasError
from eenas.models.backbone import Backbone
from eenas.train import Pipeline, TrainConfig, get_budget
from eenas.train import pipeline as pipeline_module
from eenas.train.loops import TensorBatches, fit, predict
from eenas.train.pipeline import resolve_amp

CPU = torch.device("cpu")


def test_amp_modes_resolve_to_autocast_dtypes(monkeypatch):
    assert resolve_amp("fp32", CPU) is None
    assert resolve_amp("bf16", CPU) is torch.bfloat16
    monkeypatch.setattr(pipeline_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_amp("auto", CPU) is None  # emulated bfloat16 is far slower than float32
    monkeypatch.setattr(pipeline_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_amp("auto", CPU) is torch.bfloat16
    with pytest.raises(EenasError, match="--amp fp16: unknown"):
        resolve_amp("fp16", CPU)


def test_bf16_training_runs_the_forward_pass_in_bf16_and_learns():
    torch.manual_seed(0)
    x, y = torch.randn(256, 8), torch.randint(0, 2, (256,))
    x[y == 1] += 1.5  # separable
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    seen = []
    model[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    acc = fit(model, TensorBatches(x, y, 32, CPU, shuffle=True), epochs=5, lr=0.1, amp=torch.bfloat16)
    assert seen and set(seen) == {torch.bfloat16}
    assert acc > 0.8
    logits = predict(model, TensorBatches(x, y, 64, CPU), amp=torch.bfloat16)[0]
    assert logits.dtype == torch.float32  # cached logits stay float32 whatever the training dtype


def test_label_smoothing_changes_the_loss_it_trains_on():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    weights = {}
    for smoothing in (0.0, 0.3):
        torch.manual_seed(1)
        model = nn.Linear(4, 3)
        fit(model, TensorBatches(x, y, 64, CPU), epochs=1, lr=0.5, label_smoothing=smoothing)
        weights[smoothing] = model.weight.detach().clone()
    assert not torch.allclose(weights[0.0], weights[0.3])


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5])
def test_a_one_cycle_schedule_of_a_few_steps_trains(steps):
    """torch's one-cycle schedule divides by zero when its warm-up would end at step 0 (4 steps at 25%)."""
    torch.manual_seed(0)
    x, y = torch.randn(16 * steps, 4), torch.randint(0, 3, (16 * steps,))
    model = nn.Linear(4, 3)
    before = model.weight.detach().clone()
    fit(model, TensorBatches(x, y, 16, CPU), epochs=1, lr=0.1, one_cycle=True)
    assert not torch.equal(before, model.weight)


def test_dropout_is_the_budgets():
    assert Backbone(10, 0.25, dropout=0.0).final[-1][0].p == 0.0
    assert Backbone(10, 0.25).final[-1][0].p == 0.2


def test_cache_keys_follow_the_recipe_and_the_training_dtype(cache_dir):
    base = TrainConfig("synthetic", get_budget("tiny"), 0.25, cache_dir=cache_dir, device="cpu", amp="fp32")
    variants = [base, replace(base, amp="bf16"), replace(base, budget=replace(base.budget, label_smoothing=0.1)),
                replace(base, budget=replace(base.budget, dropout=0.0))]
    assert len({Pipeline(cfg).float_key() for cfg in variants}) == len(variants)
