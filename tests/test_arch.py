import json

import pytest

from eenas.arch import Arch, arch_from_dict, load_arch, save_arch
from eenas.errors import EenasError
from tests.conftest import arch_dict


def test_round_trip(tmp_path):
    arch = arch_from_dict(arch_dict())
    save_arch(arch, tmp_path / "a.json")
    assert load_arch(tmp_path / "a.json") == arch
    assert arch.num_classes == 10 and [e.after_block for e in arch.exits] == [3, 7]


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
        ({"quant": {"backbone": {"weights": 3, "activations": 8}}}, "quant.backbone.weights"),
        ({"quant": {"exits": {"weights": 8}}}, "quant.exits"),
        ({"hardware": 5}, "hardware"),
    ],
)
def test_validation_names_the_bad_field(overrides, field):
    with pytest.raises(EenasError, match=field.replace("[", r"\[").replace("]", r"\]")):
        arch_from_dict(arch_dict(**overrides))


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
