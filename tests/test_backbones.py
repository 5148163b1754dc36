"""The backbone registry: specs against the issue's figures, torch modules against specs, arch files, QAT, cost."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from eenas.arch import Arch, BackboneConfig, ExitConfig, Precision, arch_from_dict
from eenas.cli import main
from eenas.errors import EenasError
from eenas.hardware import cost_arch
from eenas.models.registry import get_backbone, head_spec, list_backbones, network_spec, unregister
from eenas.quant import quantize_backbone
from eenas.quant.lsq import LsqQuantizer
from eenas.quant.modules import QConvBN, QLinear
from eenas.search.space import SearchSpace
from eenas.study.mounts import MountSettings

ENTRIES = [("mobilenet_v2", (("width_mult", 0.5),)), ("paper_mbv2", (("final_head", "pool4_fc"),)),
           ("paper_mbv2", (("final_head", "pool4_fc_fc"),)), ("resnet20", ())]
IDS = ["mobilenet_v2", "paper_mbv2-pool4_fc", "paper_mbv2-pool4_fc_fc", "resnet20"]


def build(name: str, options: tuple) -> nn.Module:
    return get_backbone(name).build(10, 0.0, dict(options)).eval()


def test_the_registry_lists_the_three_families_and_names_them_in_errors():
    assert list_backbones()[:3] == ("mobilenet_v2", "paper_mbv2", "resnet20")
    with pytest.raises(EenasError, match=r"backbone.name: unknown backbone 'vgg' \(known: mobilenet_v2, paper_mbv2"):
        get_backbone("vgg")
    assert head_spec("pool4_fc_fc").hidden and not head_spec("pool_fc").hidden


def test_paper_mbv2_spec_matches_the_reference_counts():
    spec = network_spec("paper_mbv2", (("final_head", "pool4_fc"),), 10)
    assert spec.trunk_params() == 1_388_288  # conv weights plus two per BN channel
    assert spec.trunk_macs() == 195_325_952
    blocks = spec.units[1:]
    assert [u.channels for u in blocks] == [16, 24, 24, 32, 32, 64, 64, 96, 96, 160, 160, 320]
    assert [u.size for u in blocks] == [32] * 5 + [16] * 4 + [8] * 3
    assert [i for i, u in enumerate(blocks) if u.layers[-1].op == "add"] == [2, 4, 6, 8, 10]
    assert [next(la.kernel for la in u.layers if la.name.endswith(".dw")) for u in blocks] == [3] * 7 + [7] * 5
    assert not any(la.name == "b0.expand" for la in blocks[0].layers)
    assert spec.mounts == tuple(range(10)) and spec.unit(9) is blocks[9]


def test_paper_mbv2_final_heads():
    """pool4_fc: 320x8x8 max-pooled to 4x4, FC 5120 -> 10; pool4_fc_fc: FC 5120 -> 2560, ReLU6, FC 2560 -> 10."""
    small = network_spec("paper_mbv2", (("final_head", "pool4_fc"),), 10).classifier
    large = network_spec("paper_mbv2", (("final_head", "pool4_fc_fc"),), 10).classifier
    assert [(la.op, la.in_channels, la.out_channels) for la in small] == [("max", 320, 320), ("conv", 5120, 10)]
    assert sum(la.params for la in large) == 5120 * 2560 + 2560 + 2560 * 10 + 10


def test_resnet20_spec():
    spec = network_spec("resnet20", (), 10)
    assert [u.channels for u in spec.units] == [16] * 4 + [32] * 3 + [64] * 3
    assert [u.size for u in spec.units] == [32] * 4 + [16] * 3 + [8] * 3
    shortcuts = [la for u in spec.units for la in u.layers if la.name.endswith(".shortcut")]
    assert [(s.name, s.in_channels, s.out_channels, s.stride) for s in shortcuts] == [
        ("b4.shortcut", 16, 32, 2), ("b7.shortcut", 32, 64, 2)]
    # He et al.'s 0.27M: 3x3 convs and BN of 19 layers, the 64 -> 10 FC, and the two 1x1 shortcuts (+BN).
    convs = 16 * 3 * 9 + 6 * 16 * 16 * 9 + (16 * 32 + 5 * 32 * 32 + 32 * 64 + 5 * 64 * 64) * 9
    bn = 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64)
    assert sum(la.params for la in spec.layers()) == convs + bn + 64 * 10 + 10 + (16 * 32 + 64) + (32 * 64 + 128)
    assert spec.mounts == tuple(range(1, 9)) and spec.final_block == 10


@pytest.mark.parametrize(("name", "options"), ENTRIES, ids=IDS)
def test_torch_module_has_the_specs_parameters_and_shapes(name, options):
    spec, model = network_spec(name, options, 10), build(name, options)
    assert sum(p.numel() for p in model.parameters()) == sum(la.params for la in spec.layers())
    taps, logits = model.taps(torch.randn(2, 3, 32, 32), spec.mounts)
    assert logits.shape == (2, 10)
    for m in spec.mounts:
        assert taps[m].shape[1:] == (spec.unit(m).channels, spec.unit(m).size, spec.unit(m).size)


@pytest.mark.parametrize(("name", "options", "relus"), [
    (*ENTRIES[1], 1 + 1 + 2 * 11),  # stem, block 0's depthwise, expansion and depthwise of blocks 1..11
    (*ENTRIES[2], 1 + 1 + 2 * 11 + 1),  # and the hidden FC's ReLU6
    (*ENTRIES[3], 1 + 2 * 9),  # stem, per block after conv1 and after the sum
], ids=IDS[1:])
def test_qat_wraps_every_conv_and_linear_of_the_new_families(name, options, relus):
    spec = network_spec(name, options, 10)
    model = quantize_backbone(build(name, options), Precision(4, 4))
    parents = {id(c): type(m) for m in model.modules() for c in m.children()}
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(parents[id(m)] is (QConvBN if isinstance(m, nn.Conv2d) else QLinear) for m in layers)
    assert len(layers) == sum(la.op == "conv" for la in spec.layers())
    # Every ReLU/ReLU6 output (standalone ones included) is re-quantized: an unsigned quantizer follows each.
    activations = 0
    for parent in model.modules():
        children = list(parent.children())
        for i, child in enumerate(children):
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                activations += 1
                assert isinstance(parent, nn.Sequential) and isinstance(children[i + 1], LsqQuantizer)
                assert not children[i + 1].signed
    assert activations == relus
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def paper_arch(**backbone) -> dict:
    return {"eenas_version": 1, "dataset": "cifar10", "backbone": {"name": "paper_mbv2", **backbone},
            "exits": [{"after_block": 0, "head": "pool4_fc", "threshold": 0.9},
                      {"after_block": 9, "head": "pool4_fc_fc", "threshold": 0.8}]}


def test_a_paper_mbv2_arch_file_round_trips_with_its_options():
    arch = arch_from_dict(paper_arch(final_head="pool4_fc"))
    assert arch.backbone == BackboneConfig("paper_mbv2", 1.0, (("final_head", "pool4_fc"),))
    assert arch.to_dict()["backbone"] == {"name": "paper_mbv2", "final_head": "pool4_fc"}
    assert arch_from_dict(arch.to_dict()) == arch
    default = arch_from_dict(paper_arch())
    assert default.to_dict()["backbone"] == {"name": "paper_mbv2", "final_head": "pool4_fc_fc"}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["backbone"].update(name="vgg16"),
     "backbone.name: unknown backbone 'vgg16' (known: mobilenet_v2, paper_mbv2, resnet20"),
    (lambda d: d["backbone"].update(width_mult=0.5), "backbone: unknown field 'width_mult'"),
    (lambda d: d["backbone"].update(final_head="gap_fc"), "backbone.final_head: unknown head 'gap_fc'"),
    (lambda d: d["exits"][1].update(after_block=10), "exits[1].after_block: 10 is out of range 0..9"),
    (lambda d: d["exits"][0].update(head="pool_fc"),
     "exits[0].head: unknown head 'pool_fc' (known: pool4_fc, pool4_fc_fc)"),
])
def test_bad_backbone_fields_are_one_line_errors_with_exit_code_2(tmp_path, monkeypatch, capsys, edit, message):
    data = paper_arch()
    edit(data)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    monkeypatch.setattr(sys, "argv", ["eenas", "cost", "--arch", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("eenas: error: ") and err.count("\n") == 1
    assert message in err


def test_exit_after_mount_point_reads_the_right_block():
    """paper_mbv2's exit after block 0 (0-based) sits on the 16x32x32 map; resnet20's after block 3 on 16x32x32."""
    arch = Arch("cifar10", BackboneConfig("paper_mbv2", 1.0, (("final_head", "pool4_fc"),)),
                (ExitConfig(0, "pool4_fc", 0.9),))
    first = cost_arch(arch).exits[0]
    stem, block0 = 3 * 32 * 9 * 32 * 32, (32 * 9 + 32 * 16) * 32 * 32
    assert first.cum_macs == stem + block0 + 16 * 4 * 4 * 10


def test_the_worked_example_of_docs_backbones_registers_builds_and_costs(tmp_path, monkeypatch):
    page = (Path(__file__).parents[1] / "docs" / "backbones.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    (tmp_path / "plain_cnn.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        example = importlib.import_module("plain_cnn")
        assert "plain_cnn" in list_backbones()
        arch = arch_from_dict({"eenas_version": 1, "dataset": "cifar10",
                               "backbone": {"name": "plain_cnn", "channels": 8},
                               "exits": [{"after_block": 1, "head": "pool_fc", "threshold": 0.9}]})
        spec, model = arch.backbone.spec(10), example.build(10, 0.0, 8)
        assert sum(p.numel() for p in model.parameters()) == sum(la.params for la in spec.layers())
        cost = cost_arch(arch)
        # stem 3->8 at 32x32, then 8->32 at 16x16, 32->64 at 8x8, 64->128 at 4x4 (3x3 convs), the FC 128->10
        static = (3 * 8 * 32 * 32 + 8 * 32 * 16 * 16 + 32 * 64 * 8 * 8 + 64 * 128 * 4 * 4) * 9 + 128 * 10
        assert cost.static_macs == static
        # pool_fc after unit 1 (32x16x16): max-pool to 4x4, FC 512 -> 10
        assert cost.exits[0].cum_macs == (3 * 8 * 32 * 32 + 8 * 32 * 16 * 16) * 9 + 32 * 16 * 10
        with pytest.raises(EenasError, match=r"backbone.channels: 0 is not positive"):
            arch_from_dict({"eenas_version": 1, "dataset": "cifar10", "backbone": {"name": "plain_cnn", "channels": 0}})
    finally:
        unregister("plain_cnn")
        sys.modules.pop("plain_cnn", None)


def test_the_registry_and_the_cost_model_do_not_import_torch():
    code = "import sys, eenas.arch, eenas.hardware, eenas.models.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("name", "mounts", "heads"), [
    ("paper_mbv2", tuple(range(10)), ("pool4_fc", "pool4_fc_fc")),
    ("resnet20", tuple(range(1, 9)), ("gap_fc", "pool_fc", "conv_pool_fc", "dsconv_pool_fc")),
])
def test_the_search_space_has_one_gene_triple_per_mount_point_of_the_family(name, mounts, heads):
    space = SearchSpace("synthetic", 1.0, backbone=BackboneConfig(name))
    assert space.mounts == mounts and space.heads == heads and space.n_var == 3 * len(mounts) + 2
    x = np.zeros(space.n_var, dtype=int)
    x[0], x[len(mounts) - 1] = 1, len(heads)  # an exit at the first and at the last mount point
    arch = space.decode(x)
    assert [(e.after_block, e.head) for e in arch.exits] == [(mounts[0], heads[0]), (mounts[-1], heads[-1])]
    assert arch.backbone.name == name and arch_from_dict(arch.to_dict()) == arch
    assert space.genome(space.encode(arch)) == space.genome(x)
    cost_arch(arch)  # the cost model takes every arch the space decodes


def test_the_mount_study_places_exits_on_the_familys_mount_points():
    settings = MountSettings("synthetic", 1.0, n_exits=2, head="pool4_fc", backbone="paper_mbv2")
    assert len(settings.placements()) == 45 and settings.placements()[0] == (0, 1)
    assert settings.arch((0, 9)).backbone.option_items() == (("final_head", "pool4_fc_fc"),)
    with pytest.raises(EenasError, match="--head: unknown head 'pool_fc' \\(known: pool4_fc, pool4_fc_fc\\)"):
        MountSettings("synthetic", 1.0, head="pool_fc", backbone="paper_mbv2")
    with pytest.raises(EenasError, match="--exits 9 must be between 1 and 8"):
        MountSettings("synthetic", 1.0, n_exits=9, backbone="resnet20")
