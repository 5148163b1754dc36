"""ENOS networks, relaxation, objective and schemes on tiny models and synthetic data."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from eenas.data import Batches, synthetic_dataset
from eenas.enos.budget import ENOS_BUDGETS
from eenas.enos.energy import load_energy_table, table_from_dict
from eenas.enos.networks import build_network, make_searchable
from eenas.enos.relaxation import Architecture, MixedLayer, VariationalArchitecture, relax
from eenas.enos.schemes import SCHEMES, Progressive
from eenas.enos.search import EnosConfig, recalibrate_bn, run_enos
from eenas.enos.searcher import Searcher, SearchSettings
from eenas.hardware import ConvLayer

TINY = ENOS_BUDGETS["tiny"]


@pytest.fixture(scope="module")
def table():
    return load_energy_table()


@pytest.mark.parametrize("name,last", [("shufflenet_v2", "fc"), ("squeezenet", "classifier.1")])
def test_networks_are_adapted_to_32x32_and_fully_searchable(name, last, table):
    net = build_network(name, 10, TINY.size(name), table)
    assert not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules())
    layers = net.layers
    stem = layers[0].shape
    assert (stem.height, stem.stride, stem.kernel) == (32, 1, 3)
    assert layers[-1].name == last
    # The last conv before global pooling sees 4x4 maps, as the docstring promises.
    last_conv = layers[-2] if name == "shufflenet_v2" else layers[-1]
    assert (last_conv.shape.height, last_conv.shape.width) == (4, 4)
    for layer in layers:
        layer.fixed = 0
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_mixed_layer_output_is_the_probability_weighted_sum_of_its_candidates(table):
    torch.manual_seed(0)
    layer = MixedLayer(nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), ConvLayer(4, 6, 8, 8, 3),
                       table, "conv", 0)
    layer.eval()
    x = torch.randn(2, 4, 8, 8)
    singles = []
    for k in range(len(table.candidates)):
        layer.fixed = k
        singles.append(layer(x))
    layer.fixed = None
    logits = torch.randn(1, len(table.candidates))
    (mix,) = relax(logits, "softmax")
    layer.mix = mix
    expected = sum(p * y for p, y in zip(torch.softmax(logits[0], 0), singles))
    assert torch.allclose(layer(x), expected, atol=1e-5)
    (sample,) = relax(logits, "gumbel")
    assert len(sample.active) == 1 and sample.weights[sample.active[0]].item() == pytest.approx(1.0)


def test_variational_kl_matches_the_closed_form():
    arch = VariationalArchitecture(1, 2, init_std=0.5, prior_std=2.0)
    with torch.no_grad():
        arch.alpha.copy_(torch.tensor([[1.0, -3.0]]))
    mu, s, p = torch.tensor([1.0, -3.0]), 0.5, 2.0
    hand = sum(math.log(p / s) + (s**2 + m**2) / (2 * p**2) - 0.5 for m in mu.tolist())
    assert arch.kl().item() == pytest.approx(hand, rel=1e-5)
    with torch.no_grad():
        arch.alpha.zero_()
        arch.rho.fill_(math.log(math.expm1(2.0)))
    assert arch.kl().item() == pytest.approx(0.0, abs=1e-5)


def _mini_network(table) -> nn.Module:
    """Two searchable layers: a 3x3 conv and the classifier, so objective tests run in seconds."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    return make_searchable(net, table)


def _batches(n: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = synthetic_dataset(n, seed=3)
    return list(Batches(data, "synthetic", 16, torch.device("cpu"), shuffle=True, seed=0))


def _search(table, energy_weight: float, batches, epochs: int = 1, relaxation: str = "softmax"):
    net = _mini_network(table)
    energy = table.matrix([layer.shape for layer in net.layers])
    arch = Architecture(len(net.layers), len(table.candidates))
    total = epochs * len(batches)
    searcher = Searcher(net, arch, energy, SearchSettings(energy_weight, relaxation, lr=0.05, arch_lr=0.1,
                                                           total_steps=total))
    torch.manual_seed(1)
    SCHEMES["single"].run(searcher, batches, batches, epochs)
    return searcher, energy


def test_zero_energy_weight_ignores_the_energy_table(table):
    """λ = 0: no candidate is chosen for its energy; any table gives the same search."""
    batches = _batches()
    base, _ = _search(table, 0.0, batches)
    data = {"extends": "edge_tpu_single", "operators": {
        c.operator: {} for c in table.candidates}}
    for i, c in enumerate(table.candidates):  # reversed, wildly different energies
        data["operators"][c.operator][c.mode] = {"pj_per_op": 10.0 ** (len(table.candidates) - i), "source": "test"}
    data["cim"] = {"array_rows": table.cim.array_rows, "adc_bits": table.cim.adc_bits}
    other, _ = _search(table_from_dict(data, "other.yaml", None), 0.0, batches)
    assert torch.equal(base.arch.alpha, other.arch.alpha)


def test_large_energy_weight_picks_the_cheapest_candidate_of_every_layer(table):
    searcher, energy = _search(table, 1e4, _batches(), epochs=10)
    assert searcher.mean_probabilities().argmax(1).tolist() == energy.argmin(1).tolist()


def test_progressive_pins_every_layer_most_confident_first(table):
    net = _mini_network(table)
    energy = table.matrix([layer.shape for layer in net.layers])
    searcher = Searcher(net, Architecture(2, len(table.candidates)), energy,
                        SearchSettings(0.0, "softmax", lr=0.05, arch_lr=0.1, total_steps=4))
    with torch.no_grad():
        searcher.arch.alpha[1, 3] = 5.0  # layer 1 is sure of candidate 3; layer 0 undecided
        searcher.arch.alpha[0, 2] = 0.5
    assert Progressive.next_layer(searcher) == 1
    searcher.fix(1)
    assert Progressive.next_layer(searcher) == 0
    batches = _batches(32)
    Progressive().run(searcher, batches, batches, 2)
    assert all(layer.fixed is not None for layer in net.layers)
    assert net.layers[1].fixed == 3 and list(searcher.pinned) == [1, 0]


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_every_scheme_returns_a_valid_assignment(scheme, tmp_path: Path, table):
    # Hard Gumbel sampling runs one candidate per layer and step: the same code paths, 9x less work.
    cfg = EnosConfig(model="shufflenet_v2", dataset="synthetic", scheme=scheme, energy_weight=1.0, budget="tiny",
                     relaxation="gumbel", device="cpu")
    result = run_enos(cfg, tmp_path / scheme, cache_dir=str(tmp_path / "cache"))
    saved = json.loads((tmp_path / scheme / "assignment.json").read_text())
    assert (tmp_path / scheme / "layers.csv").exists() and (tmp_path / scheme / "layers.md").exists()
    assert saved["config"]["scheme"] == scheme and len(saved["layers"]) == len(result.layers) > 10
    assert 0.0 <= saved["test_accuracy"] <= 1.0
    total = 0.0
    for layer in saved["layers"]:
        label = f"{layer['operator']}/{layer['mode']}"
        assert label in table.labels
        assert sum(layer["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert layer["probabilities"][label] == max(layer["probabilities"].values())
        total += layer["energy_pj"]
        if scheme == "variational":
            assert 0.0 < layer["choice_frequency"] <= 1.0 and layer["choice_probability_std"] >= 0.0
    assert saved["energy_pj"] == pytest.approx(total)
    assert min(saved["single_operator_energy_pj"].values()) <= total <= max(saved["single_operator_energy_pj"].values())


def _searcher(table, settings: SearchSettings) -> Searcher:
    net = _mini_network(table)
    energy = table.matrix([layer.shape for layer in net.layers])
    return Searcher(net, Architecture(len(net.layers), len(table.candidates)), energy, settings)


def test_bilevel_steps_the_logits_only_on_validation_batches(table):
    train, val = _batches(64), [(x + 100.0, y) for x, y in _batches(32)]  # shifted: told apart by value
    settings = SearchSettings(0.0, "softmax", lr=0.05, arch_lr=0.1, total_steps=2 * len(train),
                              warmup_steps=len(train))
    searcher = _searcher(table, settings)
    seen: list[torch.Tensor] = []
    objective, arch_step = searcher.objective, searcher.arch_opt.step
    searcher.objective = lambda x, y: (seen.append(x), objective(x, y))[1]
    stepped: list[torch.Tensor] = []
    searcher.arch_opt.step = lambda *a, **k: (stepped.append(seen[-1]), arch_step(*a, **k))[1]
    SCHEMES["bilevel"].run(searcher, train, val, 2)
    assert len(stepped) == len(train)  # one logit step per training batch after the one-epoch warm-up
    assert all(x.min() > 50 for x in stepped)  # every one on a validation batch
    assert sum(x.min() > 50 for x in seen) == len(train)  # and no validation batch was spent in the warm-up


def test_warm_up_trains_weights_only_and_tau_anneals_geometrically(table):
    batches = _batches(64)
    settings = SearchSettings(1.0, "softmax", lr=0.05, arch_lr=0.1, total_steps=2 * len(batches),
                              tau=(2.0, 0.5), warmup_steps=len(batches))
    searcher = _searcher(table, settings)
    assert searcher.tau == 2.0
    weight = searcher.layers[0].weights["shared"].detach().clone()
    SCHEMES["single"].run(searcher, batches, batches, 1)
    assert torch.equal(searcher.arch.alpha, torch.zeros_like(searcher.arch.alpha))
    assert not torch.equal(searcher.layers[0].weights["shared"], weight)
    assert searcher.tau == pytest.approx(2.0 * 0.25 ** (4 / 7))  # 4 of 8 steps: progress 4/7 of the way
    SCHEMES["single"].run(searcher, batches, batches, 1)
    assert searcher.tau == pytest.approx(0.5) and searcher.arch.alpha.abs().sum() > 0


def test_sequential_learns_one_layers_logits_per_step(table):
    batches = _batches(48)  # 3 batches over 2 layers: layer 0, layer 1, layer 0
    searcher = _searcher(table, SearchSettings(1.0, "softmax", lr=0.05, arch_lr=0.1, total_steps=3))
    history = []
    step = searcher.step
    searcher.step = lambda *a, **k: (step(*a, **k), history.append(searcher.arch.alpha.detach().clone()))[0]
    SCHEMES["sequential"].run(searcher, batches, batches, 1)
    before = torch.zeros_like(history[0])
    for t, alpha in enumerate(history):
        changed = (alpha != before).any(dim=1).tolist()
        assert changed == [t % 2 == 0, t % 2 == 1], t
        before = alpha


def test_energy_is_normalised_by_the_all_mac8_digital_network(table):
    searcher = _searcher(table, SearchSettings(1.0, "softmax", lr=0.05, arch_lr=0.1, total_steps=1))
    assert searcher.energy[:, 0].sum().item() == pytest.approx(1.0)  # mac8/digital is the first candidate
    assert table.labels[0] == "mac8/digital" and searcher.energy.max() > searcher.energy[:, 0].max()


def test_family_weights_give_each_operator_family_its_own_float_weights(table):
    layer = MixedLayer(nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), ConvLayer(4, 6, 8, 8, 3),
                       table, "conv", 0, weights="family")
    assert set(layer.weights) == {"lsq", "sign", "mf", "shift"}
    assert layer.families[:4] == ["lsq"] * 4 and layer.families[-2:] == ["sign"] * 2  # mac8, mac4; xnor with binary
    assert torch.equal(layer.weights["lsq"], layer.weights["shift"])  # the same start
    layer.keep_only(table.labels.index("shift/digital"))
    assert list(layer.weights) == ["shift"] and layer(torch.randn(2, 4, 8, 8)).shape == (2, 6, 8, 8)


def test_bn_recalibration_is_a_plain_average_over_the_batches():
    net = nn.Sequential(nn.BatchNorm2d(3))
    net[0].running_mean.fill_(7.0)
    batches = [(torch.full((2, 3, 1, 1), float(v)), None) for v in (1, 2, 6, 100)]
    recalibrate_bn(net, batches, max_batches=3)
    assert net[0].running_mean.tolist() == pytest.approx([3.0] * 3) and net[0].momentum == 0.1
    assert not net.training


def test_the_searched_network_is_retrained_exactly_like_a_baseline(tmp_path: Path, monkeypatch, table):
    """One fit per network, same recipe, on a fresh seeded network holding only the chosen candidates, on the
    budget's first ``finetune_limit`` training images."""
    import eenas.enos.search as search

    monkeypatch.setitem(ENOS_BUDGETS, "tiny", replace(TINY, finetune_limit=2 * TINY.batch_size, search_batch_size=16))
    real_batches, sizes = search.Workspace.batches, []

    def recording_batches(self, split, train=False, limit=None, batch_size=None):
        made = real_batches(self, split, train, limit, batch_size)
        sizes.append((split, made.batch_size))
        return made

    monkeypatch.setattr(search.Workspace, "batches", recording_batches)

    calls = []
    real_fit = search.fit

    def recording_fit(net, batches, epochs, lr, **kwargs):
        first = net.layers[0]
        calls.append({"epochs": epochs, "lr": lr, "batches": len(batches), **{k: v for k, v in kwargs.items()
                                                                              if k != "desc"},
                      "candidates": [len(layer.candidates) for layer in net.layers],
                      "labels": [layer.labels[0] for layer in net.layers],
                      "weight": next(iter(first.weights.values())).detach().clone()})
        return real_fit(net, batches, epochs, lr, **kwargs)

    monkeypatch.setattr(search, "fit", recording_fit)
    cfg = EnosConfig(dataset="synthetic", budget="tiny", energy_weight=0.5, device="cpu")
    ws = search.Workspace(cfg)
    cache = search.Cache(str(tmp_path / "cache"))
    found = search.run_search(cfg, ws, cache)
    baseline = search.train_single_operator(cfg, 3, ws, cache)
    assert len(calls) == 2 and baseline.val_accuracy >= 0.0
    enos_call, base_call = calls
    assert enos_call["labels"] == [f"{c.operator}/{c.mode}" for c in found.layers]
    assert base_call["labels"] == [table.labels[3]] * len(found.layers)
    fresh, _ = ws.network()
    for call in calls:
        assert set(call["candidates"]) == {1}
        assert torch.equal(call["weight"], fresh.layers[0].weights["shared"])  # from scratch, not the supernet's
        assert call["one_cycle"] is True
    recipe = ("epochs", "lr", "batches", "one_cycle", "label_smoothing", "amp")
    assert {k: enos_call[k] for k in recipe} == {k: base_call[k] for k in recipe}
    assert enos_call["epochs"] == TINY.train_epochs and enos_call["batches"] == 2  # 192 training images, 128 seen
    assert sizes[:2] == [("train", 16), ("val", 16)]  # the supernet's batches; every trained network's are 64
    assert ("train", TINY.batch_size) in sizes[2:]
    assert 0.0 <= found.details["supernet_val_accuracy"] <= 1.0 and 0.0 <= found.val_accuracy <= 1.0


def test_cifar100_runs_through_the_data_path_with_100_classes(tmp_path: Path, monkeypatch):
    import eenas.data as data

    monkeypatch.setattr(data, "_load_cifar", lambda name, root, train: synthetic_dataset(
        320 if train else 80, num_classes=100, seed=int(train)))
    cfg = EnosConfig(dataset="cifar100", budget="tiny", relaxation="gumbel", device="cpu", data_dir=str(tmp_path))
    result = run_enos(cfg, tmp_path / "out", cache_dir=str(tmp_path / "cache"))
    assert result.layers[-1].name == "fc" and 0.0 <= result.test_accuracy <= 1.0
    fc = json.loads((tmp_path / "out" / "assignment.json").read_text())["layers"][-1]
    assert fc["macs"] == 100 * 1024 // 8  # 1/8-width conv5 (128 channels) to 100 classes
