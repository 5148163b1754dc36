"""ShuffleNetV2 and SqueezeNet 1.1 from torchvision, adapted to 32x32 inputs and made searchable.

Changes to the torchvision networks, so that a 32x32 image keeps enough resolution (4x4
before global pooling in both, as 224x224 inputs keep 7x7 and 13x13):

* ShuffleNetV2: the stem conv has stride 1 (was 2) and the stem max-pool is removed, so the
  three stages run at 32, 16 and 8 pixels and conv5 at 4x4.  Stage widths are torchvision's
  x1.0 widths ``(24, 116, 232, 464, 1024)`` times ``width`` (rounded to even, at least 8);
  ``repeats`` sets the units per stage (torchvision: 4, 8, 4).
* SqueezeNet 1.1: the stem conv is 3x3 with stride 1 and padding 1 (was stride 2, no
  padding), so its three max-pools take 32 to 16, 8 and 4 pixels.  Fire widths are
  torchvision's times ``width``.

Every Conv2d (with the BatchNorm after it) and Linear then becomes a :class:`MixedLayer`.
A layer without a BatchNorm gets one (SqueezeNet's convs, both classifiers; on the
classifier it is a per-class scale and bias that folds into the output stage), because
the operators' output scales differ by orders of magnitude: the multiplication-free
``sign(w)|x|`` term, for one, ignores the weights' magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision
from torch import nn
from torchvision.models.squeezenet import Fire

from eenas.enos.energy import EnergyTable
from eenas.enos.relaxation import MixedLayer
from eenas.errors import EenasError
from eenas.hardware import ConvLayer

SHUFFLENET_WIDTHS = (24, 116, 232, 464, 1024)
# SqueezeNet 1.1 features after the stem: "M" is a 3x3/2 max-pool, tuples are Fire(squeeze, e1x1, e3x3).
SQUEEZENET_LAYOUT = ("M", (16, 64, 64), (16, 64, 64), "M", (32, 128, 128), (32, 128, 128), "M",
                     (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256))
SQUEEZENET_STEM = 64


@dataclass(frozen=True)
class NetworkSize:
    """How big a network the budget trains: a width multiplier and ShuffleNet's units per stage."""

    width: float
    repeats: tuple[int, int, int] = (4, 8, 4)


def _scaled(channels: int, width: float, multiple: int = 1) -> int:
    return max(8, int(round(channels * width / multiple)) * multiple)


def shufflenet_v2(num_classes: int, size: NetworkSize) -> nn.Module:
    widths = [_scaled(c, size.width, 2) for c in SHUFFLENET_WIDTHS]
    net = torchvision.models.ShuffleNetV2(list(size.repeats), widths, num_classes=num_classes)
    net.conv1[0].stride = (1, 1)
    net.maxpool = nn.Identity()
    return net


def squeezenet(num_classes: int, size: NetworkSize) -> nn.Module:
    net = torchvision.models.SqueezeNet("1_1", num_classes=num_classes)
    channels = _scaled(SQUEEZENET_STEM, size.width)
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, stride=1, padding=1), nn.ReLU(inplace=True)]
    for item in SQUEEZENET_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
            continue
        squeeze, e1, e3 = (_scaled(c, size.width) for c in item)
        layers.append(Fire(channels, squeeze, e1, e3))
        channels = e1 + e3
    net.features = nn.Sequential(*layers)
    net.classifier[1] = nn.Conv2d(channels, num_classes, kernel_size=1)
    return net


NETWORKS = {"shufflenet_v2": shufflenet_v2, "squeezenet": squeezenet}


class SearchableNetwork(nn.Module):
    """A network whose conv/FC layers are :class:`MixedLayer` s, listed in execution order."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def layers(self) -> list[MixedLayer]:
        return sorted((m for m in self.net.modules() if isinstance(m, MixedLayer)), key=lambda m: m.index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@torch.no_grad()
def _trace(net: nn.Module) -> dict[nn.Module, ConvLayer]:
    """The cost-model shape of every conv/FC layer, in execution order, from one 32x32 pass."""
    shapes: dict[nn.Module, ConvLayer] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        x = inputs[0]
        if isinstance(module, nn.Linear):
            shapes[module] = ConvLayer(module.in_features, module.out_features, 1, 1)
            return
        k, s = module.kernel_size[0], module.stride[0]
        if module.kernel_size != (k, k) or module.padding != (k // 2, k // 2) or module.stride != (s, s):
            raise EenasError(f"{type(module).__name__}: only square kernels with 'same' padding are searchable")
        shapes[module] = ConvLayer(module.in_channels, module.out_channels, x.shape[2], x.shape[3], k, s, module.groups)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    net.eval()
    net(torch.zeros(1, 3, 32, 32))
    for h in handles:
        h.remove()
    return shapes


def _make_searchable(parent: nn.Module, shapes: dict[nn.Module, ConvLayer], order: list[nn.Module],
                     table: EnergyTable, weights: str, prefix: str = "") -> None:
    """Replace every conv (with the BatchNorm that follows it, else a new one) and FC layer."""
    children = list(parent.named_children())
    for i, (name, child) in enumerate(children):
        path = f"{prefix}{name}"
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            follower = children[i + 1][1] if isinstance(parent, nn.Sequential) and i + 1 < len(children) else None
            if isinstance(child, nn.Conv2d) and isinstance(follower, nn.BatchNorm2d):
                bn = follower
                setattr(parent, children[i + 1][0], nn.Identity())
            else:
                bn = nn.BatchNorm2d(shapes[child].out_channels)
            setattr(parent, name, MixedLayer(child, bn, shapes[child], table, path, order.index(child), weights))
        elif not isinstance(child, MixedLayer):
            _make_searchable(child, shapes, order, table, weights, f"{path}.")


def make_searchable(net: nn.Module, table: EnergyTable, weights: str = "shared") -> SearchableNetwork:
    """Replace every conv/FC layer of a network for 3x32x32 inputs by a :class:`MixedLayer`."""
    shapes = _trace(net)
    _make_searchable(net, shapes, list(shapes), table, weights)
    return SearchableNetwork(net)


def build_network(name: str, num_classes: int, size: NetworkSize, table: EnergyTable,
                  weights: str = "shared") -> SearchableNetwork:
    if name not in NETWORKS:
        raise EenasError(f"unknown network '{name}' (known: {', '.join(NETWORKS)})")
    return make_searchable(NETWORKS[name](num_classes, size), table, weights)
