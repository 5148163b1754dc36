"""ENOS networks from pretrained float weights: pretrain, publish, and every run starting from them.

At ``tiny`` on synthetic data, in a registry folder of the module's own (``$EENAS_WEIGHTS_DIR``).
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from eenas.cli import cli
from eenas.enos import EnosConfig
from eenas.enos.networks import float_network, make_searchable
from eenas.enos.pretrain import pretrain_key
from eenas.enos.search import Workspace, cache_key, train_single_operator
from eenas.train.cache import Cache
from eenas.weights import WeightsRegistry
from eenas.weights.files import load_state_dict
from tests.conftest import run_eenas

NAME = "tiny_squeezenet"
TINY = {"model": "squeezenet", "dataset": "synthetic", "budget": "tiny", "device": "cpu"}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EENAS_WEIGHTS_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def published(registry_dir, tmp_path_factory):
    """The tiny SqueezeNet pretrained and published as NAME; returns the cache folder."""
    cache = tmp_path_factory.mktemp("enos-cache")
    out = invoke("enos", "pretrain", "--model", "squeezenet", "--dataset", "synthetic", "--budget", "tiny",
                 "--device", "cpu", "--cache-dir", cache, "--publish", NAME)
    assert f"registered {NAME}@sha256:" in out
    return cache


def test_float_network_has_a_batchnorm_after_every_layer_and_loads_into_the_searchable_one():
    from eenas.enos.budget import ENOS_BUDGETS
    from eenas.enos.energy import load_energy_table

    size = ENOS_BUDGETS["tiny"].size("squeezenet")
    torch.manual_seed(0)
    net = float_network("squeezenet", 10, size)
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d))]
    assert len(norms) == len(layers) > 0  # SqueezeNet has none of its own
    conv = layers[0].weight.detach().clone()
    searchable = make_searchable(net, load_energy_table())
    assert len(searchable.layers) == len(layers)
    assert searchable.layers[0].name == "features.0"  # the names stay those of the torchvision network
    assert torch.equal(searchable.layers[0].weights["shared"].detach(), conv)


def test_publish_records_the_float_accuracy_and_recipe(published, registry_dir):
    entry = WeightsRegistry(registry_dir).get(NAME)
    assert (entry.backbone, entry.dataset, dict(entry.options)) == ("squeezenet", "synthetic", {"width": 0.125})
    assert set(entry.accuracy["w32a32"]) == {"val", "test"}
    assert entry.recipe["pretrain_epochs"] == 2 and entry.threads >= 1 and entry.history
    assert entry.recipe["amp"] == "fp32"  # the --amp mode, as the other entries name it
    assert entry.command.endswith("eenas enos pretrain --model squeezenet --dataset synthetic --budget tiny --seed 0")


def test_every_seed_starts_from_the_published_weights(published, registry_dir):
    """One split for all seeds, so the weights (trained with seed 0) fit seed 1's runs too."""
    entry = WeightsRegistry(registry_dir).get(NAME)
    state = load_state_dict(entry, WeightsRegistry(registry_dir))
    for seed in (0, 1):
        ws = Workspace(EnosConfig(**TINY, seed=seed))
        assert ws.pretrained == entry
        net, _ = ws.network()
        assert torch.equal(net.layers[0].weights["shared"].detach(), state["features.0.0.weight"])
    scratch = Workspace(EnosConfig(**TINY, pretrained="none"))
    assert scratch.pretrained is None and cache_key("train", scratch) != cache_key("train", ws)


@pytest.mark.parametrize("pretrained", ["auto", "none"])
def test_a_warm_started_network_is_fine_tuned_and_a_cold_one_trained_from_scratch(published, registry_dir, tmp_path,
                                                                                   monkeypatch, pretrained):
    import eenas.enos.search as search

    state = load_state_dict(WeightsRegistry(registry_dir).get(NAME), WeightsRegistry(registry_dir))
    calls = []

    def recording_fit(net, batches, epochs, lr, **kwargs):
        calls.append({"lr": lr, "one_cycle": kwargs["one_cycle"],
                      "from_weights": torch.equal(net.layers[0].weights["shared"].detach(),
                                                  state["features.0.0.weight"])})
        return 0.0

    monkeypatch.setattr(search, "fit", recording_fit)
    cfg = EnosConfig(**TINY, pretrained=pretrained)
    ws = Workspace(cfg)
    train_single_operator(cfg, 0, ws, Cache(tmp_path))
    warm = pretrained == "auto"
    assert calls == [{"lr": ws.budget.finetune_lr if warm else ws.budget.lr, "one_cycle": not warm,
                      "from_weights": warm}]


def test_the_pretraining_key_ignores_the_search_settings():
    a = Workspace(EnosConfig(**TINY, pretrained="none"))
    b = Workspace(EnosConfig(**TINY, pretrained="none", scheme="bilevel", energy_weight=3.0))
    assert pretrain_key(a) == pretrain_key(b)
    assert pretrain_key(a) != pretrain_key(Workspace(EnosConfig(**{**TINY, "model": "shufflenet_v2"},
                                                                pretrained="none")))


def test_an_unknown_or_unfitting_name_is_one_error_line(published, registry_dir, monkeypatch, capsys):
    monkeypatch.setenv("EENAS_WEIGHTS_DIR", str(registry_dir))
    for name, words in (("nope", "unknown weights 'nope'"), (NAME, "trained with backbone squeezenet")):
        result = run_eenas(monkeypatch, capsys, "enos", "--model", "shufflenet_v2", "--dataset", "synthetic",
                           "--budget", "tiny", "--device", "cpu", "--pretrained", name)
        assert result.code == 2, result.err
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], lines
