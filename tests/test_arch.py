import json
import re
import sys

import pytest

from eenas.arch import Arch, ExitConfig, arch_from_dict, load_arch, save_arch
from eenas.cli import main
from eenas.errors import EenasError
from tests.conftest import arch_dict


def test_round_trip(tmp_path):
    arch = arch_from_dict(arch_dict())
    save_arch(arch, tmp_path / "a.json")
    assert load_arch(tmp_path / "a.json") == arch
    assert arch.num_classes == 10 and [e.after_block for e in arch.exits] == [3, 7]


def test_a_final_exit_ends_the_network_and_round_trips_without_a_threshold(tmp_path):
    arch = arch_from_dict(arch_dict(exits=[{"after_block": 7, "head": "gap_fc", "final": True, "core": 1},
                                           {"after_block": 3, "head": "pool_fc", "threshold": 0.9}]))
    assert arch.ends_at_exit and arch.n_outputs == 2 and arch.exits[-1].threshold == 0.0  # it takes every sample
    assert arch.to_dict()["exits"] == [{"after_block": 3, "head": "pool_fc", "threshold": 0.9},
                                       {"after_block": 7, "head": "gap_fc", "core": 1, "final": True}]
    save_arch(arch, tmp_path / "a.json")
    assert load_arch(tmp_path / "a.json") == arch
    plain = arch_from_dict(arch_dict())
    assert not plain.ends_at_exit and plain.n_outputs == 3 and "final" not in plain.to_dict()["exits"][1]


def test_exits_are_sorted_and_static_drops_them():
    arch = arch_from_dict(arch_dict(exits=[{"after_block": 9, "head": "gap_fc", "threshold": 0.8},
                                           {"after_block": 2, "head": "pool_fc", "threshold": 0.9}]))
    assert [e.after_block for e in arch.exits] == [2, 9]
    assert arch.static().exits == () and isinstance(arch.static(), Arch)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"eenas_version": 2}, "eenas_version"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"backbone": {"name": "resnet18"}}, "backbone.name"),
        ({"backbone": {"width_mult": "wide"}}, "backbone.width_mult"),
        ({"exits": [{"after_block": 18, "head": "pool_fc", "threshold": 0.9}]}, "exits[0].after_block"),
        ({"exits": [{"after_block": 0, "head": "pool_fc", "threshold": 0.9}]}, "exits[0].after_block"),
        ({"exits": [{"after_block": 3, "head": "mlp", "threshold": 0.9}]}, "exits[0].head"),
        ({"exits": [{"after_block": 3, "head": "pool_fc", "threshold": 1.5}]}, "exits[0].threshold"),
        ({"exits": [{"after_block": 3, "head": "pool_fc"}]}, "missing field 'threshold'"),
        ({"exits": [{"after_block": 3, "head": "pool_fc", "threshold": 0.9, "colour": 1}]}, "unknown field 'colour'"),
        ({"exits": [{"after_block": 3, "head": "pool_fc", "threshold": 0.9},
                    {"after_block": 3, "head": "gap_fc", "threshold": 0.8}]}, "duplicate mount point"),
        ({"exits": [{"after_block": True, "head": "pool_fc", "threshold": 0.9}]}, "exits[0].after_block"),
        ({"exits": [{"after_block": 3, "head": "pool_fc", "final": True, "threshold": 0.9}]}, "exits[0].threshold"),
        ({"exits": [{"after_block": 3, "head": "pool_fc", "final": True, "overlap": True}]}, "exits[0].overlap"),
        ({"exits": [{"after_block": 3, "head": "pool_fc", "final": 1}]}, "exits[0].final: expected bool"),
        ({"exits": [{"after_block": 9, "head": "gap_fc", "threshold": 0.8},
                    {"after_block": 3, "head": "pool_fc", "final": True}]}, "exits[1].final: only the deepest"),
        ({"quant": {"backbone": {"weights": 3, "activations": 8}}}, "quant.backbone.weights"),
        ({"quant": {"exits": {"weights": 8}}}, "quant.exits"),
        ({"hardware": 5}, "hardware"),
    ],
)
def test_validation_names_the_bad_field(overrides, field):
    with pytest.raises(EenasError, match=field.replace("[", r"\[").replace("]", r"\]")):
        arch_from_dict(arch_dict(**overrides))


@pytest.mark.parametrize(
    "exits, weights, field",
    [
        ([ExitConfig(18, "pool_fc", 0.9)], None, "exits[0].after_block: 18 is out of range 1..17"),
        ([ExitConfig(3, "pool_fc", 0.9), ExitConfig(5, "mlp", 0.9)], None, "exits[1].head: unknown head 'mlp'"),
        ([ExitConfig(3, "pool_fc", 0.0)], None, "exits[0].threshold: 0.0 is outside (0, 1]"),
        ([ExitConfig(3, "pool_fc", 0.9, core=-1)], None, "exits[0].core: -1 is negative"),
        ([ExitConfig(3, "pool_fc", 0.9), ExitConfig(3, "gap_fc", 0.8)], None, "exits: duplicate mount point"),
        ([ExitConfig(9, "gap_fc", 0.8), ExitConfig(3, "pool_fc", 0.0, final=True)], None,
         "exits[1].final: only the deepest"),
        ([], "cached", "weights: 'cached' is not one of"),
    ],
)
def test_an_arch_built_in_code_is_valid_by_construction(exits, weights, field):
    """The search and the studies build archs without a file: they meet the same rules, with the same messages."""
    with pytest.raises(EenasError, match=re.escape(field)):
        Arch("cifar10", exits=tuple(exits), weights=weights)
    ok = Arch("cifar10", exits=(ExitConfig(9, "gap_fc", 0.8), ExitConfig(2, "pool_fc", 0.9)))
    assert [e.after_block for e in ok.exits] == [2, 9]  # kept in backbone order


def test_malformed_json_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(EenasError, match="not valid JSON"):
        load_arch(path)
    with pytest.raises(EenasError, match="cannot read"):
        load_arch(tmp_path / "missing.json")
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(EenasError, match="expected a JSON object"):
        load_arch(path)


TRAINING = {"dataset": "synthetic", "width_mult": 0.25, "budget": "tiny", "seed": 7, "finetune": "none",
            "amp": "fp32", "training_version": 3, "val_fraction": 0.1,
            "recipe": {"pretrain_epochs": 8, "lr": 0.05, "train_limit": 1024, "head_train_limit": None}}


def test_training_block_round_trips_and_is_optional(tmp_path):
    arch = arch_from_dict(arch_dict(training=TRAINING))
    assert (arch.training.budget, arch.training.seed, arch.training.training_version) == ("tiny", 7, 3)
    # A block from before the weights registry has no 'pretrained': those weights were pretrained by the run.
    assert arch.to_dict()["training"] == {**TRAINING, "pretrained": "none"}
    save_arch(arch, tmp_path / "a.json")
    assert load_arch(tmp_path / "a.json") == arch
    assert arch_from_dict(arch_dict()).training is None and "training" not in arch_from_dict(arch_dict()).to_dict()
    without_amp = {k: v for k, v in TRAINING.items() if k != "amp"}
    with pytest.raises(EenasError, match="training: missing field 'amp'"):
        arch_from_dict(arch_dict(training=without_amp))


@pytest.mark.parametrize("change, field", [
    ({"dataset": "cifar10"}, "training.dataset: 'cifar10' is not the arch's dataset 'synthetic'"),
    ({"width_mult": 0.5}, "training.width_mult: 0.5 is not the arch's backbone.width_mult 0.25"),
    ({"seed": "7"}, "training.seed: expected int"),
    ({"seed": True}, "training.seed: expected int"),
    ({"finetune": "partial"}, "training.finetune: 'partial' is not one of"),
    ({"amp": "auto"}, "training.amp: 'auto' is not one of"),  # the block records what auto resolved to
    ({"training_version": 0}, "training.training_version: 0"),
    ({"val_fraction": 1.5}, "training.val_fraction: 1.5 is outside"),
    ({"recipe": {"lr": [0.1]}}, "training.recipe.lr: expected a number"),
    ({"colour": 1}, "training: unknown field 'colour'"),
    ({"budget": None}, "training.budget: expected str"),
])
def test_training_block_validation_names_the_bad_field(change, field):
    with pytest.raises(EenasError, match=field.replace(".", r"\.")):
        arch_from_dict(arch_dict(training={**TRAINING, **change}))


def test_weight_mode_is_optional_and_validated(tmp_path):
    assert arch_from_dict(arch_dict()).weights is None and "weights" not in arch_from_dict(arch_dict()).to_dict()
    arch = arch_from_dict(arch_dict(weights="resident"))
    assert arch.weights == "resident" and arch.to_dict()["weights"] == "resident"
    save_arch(arch, tmp_path / "a.json")
    assert load_arch(tmp_path / "a.json") == arch
    with pytest.raises(EenasError, match="^weights: 'cached' is not one of"):
        arch_from_dict(arch_dict(weights="cached"))


def test_a_binary_arch_file_is_one_clear_error(tmp_path):
    path = tmp_path / "arch.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(EenasError, match="not a text file"):
        load_arch(path)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"eenas_version": 1, "exits": ' + "[" * 100_000 + "]" * 100_000 + "}"])
def test_json_nested_too_deeply_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys, text):
    """Regression (issue 32): the parser's RecursionError was a traceback with exit code 1."""
    path = tmp_path / "deep.json"
    path.write_text(text)
    monkeypatch.setattr(sys, "argv", ["eenas", "cost", "--arch", str(path)])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err == f"eenas: error: {path}: JSON nested too deeply to read\n"
