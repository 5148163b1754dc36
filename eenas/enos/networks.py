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

Every conv and FC layer is followed by a BatchNorm (:func:`float_network` adds one where the
torchvision network has none: SqueezeNet's convs, both classifiers; on the classifier it is a
per-class scale and bias that folds into the output stage), because the operators' output
scales differ by orders of magnitude: the multiplication-free ``sign(w)|x|`` term, for one,
ignores the weights' magnitude.  The float network is pretrained in that form
(``eenas enos pretrain``), so its weights load as they are into the searchable network, where
every (conv or FC, BatchNorm) pair becomes a :class:`MixedLayer`.
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


class Normed(nn.Sequential):
    """A conv or FC layer and the BatchNorm :func:`with_batchnorm` gave it (searchable as one layer, by its name)."""


def with_batchnorm(parent: nn.Module) -> nn.Module:
    """Give every conv and FC layer of ``parent`` a BatchNorm right after it (in place; returns ``parent``).

    A layer that has one (the next module of the same ``nn.Sequential``) keeps it; any other becomes
    ``Normed(layer, norm)`` in its place.
    """
    children = list(parent.named_children())
    for i, (name, child) in enumerate(children):
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            follower = children[i + 1][1] if isinstance(parent, nn.Sequential) and i + 1 < len(children) else None
            if not isinstance(follower, (nn.BatchNorm2d, nn.BatchNorm1d)):
                norm = nn.BatchNorm2d if isinstance(child, nn.Conv2d) else nn.BatchNorm1d
                channels = child.out_channels if isinstance(child, nn.Conv2d) else child.out_features
                setattr(parent, name, Normed(child, norm(channels)))
        elif not isinstance(child, Normed):
            with_batchnorm(child)
    return parent


def float_network(name: str, num_classes: int, size: NetworkSize) -> nn.Module:
    """The float network of ``name`` at ``size``, a BatchNorm after every conv and FC layer: what is pretrained."""
    if name not in NETWORKS:
        raise EenasError(f"unknown network '{name}' (known: {', '.join(NETWORKS)})")
    return with_batchnorm(NETWORKS[name](num_classes, size))


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
    """Replace every (conv or FC, BatchNorm) pair that :func:`with_batchnorm` made sure of by one layer."""
    children = list(parent.named_children())
    for i, (name, child) in enumerate(children):
        path = f"{prefix}{name}"
        if isinstance(child, Normed):
            layer, norm = child
            setattr(parent, name, MixedLayer(layer, norm, shapes[layer], table, path, order.index(layer), weights))
        elif isinstance(child, (nn.Conv2d, nn.Linear)):
            norm_name, norm = children[i + 1]
            setattr(parent, norm_name, nn.Identity())
            setattr(parent, name, MixedLayer(child, norm, shapes[child], table, path, order.index(child), weights))
        elif not isinstance(child, MixedLayer):
            _make_searchable(child, shapes, order, table, weights, f"{path}.")


def make_searchable(net: nn.Module, table: EnergyTable, weights: str = "shared") -> SearchableNetwork:
    """Replace every conv/FC layer of a network for 3x32x32 inputs (and its BatchNorm) by a :class:`MixedLayer`."""
    shapes = _trace(net)
    _make_searchable(with_batchnorm(net), shapes, list(shapes), table, weights)
    return SearchableNetwork(net)


def build_network(name: str, num_classes: int, size: NetworkSize, table: EnergyTable,
                  weights: str = "shared", state: dict[str, torch.Tensor] | None = None) -> SearchableNetwork:
    """The searchable network of ``name``, from the float weights ``state`` when given (else as initialised)."""
    net = float_network(name, num_classes, size)
    if state is not None:
        net.load_state_dict(state)
    return make_searchable(net, table, weights)
