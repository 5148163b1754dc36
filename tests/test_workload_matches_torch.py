"""The network the cost model prices is the network PyTorch trains: MACs agree exactly."""

import pytest
import torch
from torch import nn

from eenas.arch import Arch, BackboneConfig, ExitConfig
from eenas.hardware import cost_arch
from eenas.models.backbone import Backbone
from eenas.models.heads import build_head
from eenas.models.registry import get_backbone
from eenas.models.spec import HEADS, mobilenet_v2_spec


def torch_macs(model: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() // output.shape[0] * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("width", [0.5, 1.0])
def test_static_backbone_macs(width):
    arch = Arch("cifar10", BackboneConfig("mobilenet_v2", width))
    assert cost_arch(arch).static_macs == torch_macs(Backbone(10, width), torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("mount", [1, 3, 8, 15])
def test_head_macs(head, mount):
    width = 0.5
    block = mobilenet_v2_spec(width).block(mount)
    arch = Arch("cifar10", BackboneConfig("mobilenet_v2", width), (ExitConfig(mount, head, 0.9),))
    first_exit = cost_arch(arch).exits[0]  # stem + blocks 1..mount + the head
    module = build_head(head, block.out_channels, block.out_size, 10)
    x = torch.randn(1, block.out_channels, block.out_size, block.out_size)
    prefix = Backbone(10, width).features[: mount + 1]
    assert first_exit.cum_macs == torch_macs(prefix, torch.randn(1, 3, 32, 32)) + torch_macs(module, x)


FAMILIES = [("paper_mbv2", (("final_head", "pool4_fc"),)), ("paper_mbv2", (("final_head", "pool4_fc_fc"),)),
            ("resnet20", ())]


@pytest.mark.parametrize(("name", "options"), FAMILIES, ids=["paper_mbv2-pool4_fc", "paper_mbv2-pool4_fc_fc",
                                                             "resnet20"])
def test_every_family_costs_the_macs_its_torch_module_runs(name, options):
    """Static network, and the first exit of each head at the first, a middle and the last mount point."""
    config, entry = BackboneConfig(name, 1.0, options), get_backbone(name)
    model = entry.build(10, 0.0, dict(options))
    assert cost_arch(Arch("cifar10", config)).static_macs == torch_macs(model, torch.randn(1, 3, 32, 32))
    spec = config.spec(10)
    for mount in (spec.mounts[0], spec.mounts[len(spec.mounts) // 2], spec.mounts[-1]):
        unit = spec.unit(mount)
        prefix = model.features[: mount + model.mount_offset + 1]
        x = torch.randn(1, unit.channels, unit.size, unit.size)
        for head in entry.heads:
            first_exit = cost_arch(Arch("cifar10", config, (ExitConfig(mount, head, 0.9),))).exits[0]
            module = build_head(head, unit.channels, unit.size, 10)
            assert first_exit.cum_macs == torch_macs(prefix, torch.randn(1, 3, 32, 32)) + torch_macs(module, x)
