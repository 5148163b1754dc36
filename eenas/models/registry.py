"""The backbone registry: one entry per network family, in the style of timm's ``register_model``.

An entry gives the torch-free :class:`~eenas.models.spec.NetworkSpec` (what the cost model,
the arch validation, the search space and the pipeline read), its exit heads, its options
(the arch file's ``backbone`` fields besides ``name``) and the PyTorch builder.  The builder
is named by ``"module:function"`` and imported only when a network is built, so this module
and the cost model never import torch.  docs/backbones.md shows how to add an entry.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eenas.errors import EenasError
from eenas.models.paper_mbv2_spec import DEFAULT_FINAL_HEAD, paper_mbv2_spec
from eenas.models.paper_mbv2_spec import HEADS as PAPER_HEADS
from eenas.models.resnet_spec import resnet20_spec
from eenas.models.spec import HEADS, HeadSpec, NetworkSpec, mobilenet_v2_spec

DEFAULT_BACKBONE = "mobilenet_v2"


@dataclass(frozen=True)
class Option:
    """One backbone option: its default and a check that returns what is wrong with a value (or None)."""

    default: Any
    check: Callable[[Any], str | None] = lambda value: None
    help: str = ""


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone family.

    ``spec(num_classes, **options)`` returns the network's shapes; ``builder`` names a
    function ``(num_classes, dropout, **options) -> nn.Module`` returning a module with
    ``features`` (stem, then the units), ``final`` (the final exit) and ``taps``
    (see :class:`eenas.models.backbone.TappedBackbone`).
    """

    name: str
    summary: str
    spec: Callable[..., NetworkSpec]
    builder: str
    heads: Mapping[str, HeadSpec]
    options: Mapping[str, Option] = field(default_factory=dict)

    def build(self, num_classes: int, dropout: float, options: Mapping[str, Any]) -> Any:
        module, function = self.builder.split(":")
        return getattr(importlib.import_module(module), function)(num_classes, dropout, **options)


_REGISTRY: dict[str, BackboneEntry] = {}


def register(entry: BackboneEntry) -> BackboneEntry:
    """Add a backbone family; its name must be new and its head names unused by other families."""
    if entry.name in _REGISTRY:
        raise EenasError(f"backbone '{entry.name}' is already registered")
    for other in _REGISTRY.values():
        shared = [h for h in entry.heads if h in other.heads and entry.heads[h] != other.heads[h]]
        if shared:
            raise EenasError(f"backbone '{entry.name}': head '{shared[0]}' differs from {other.name}'s")
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a family (tests and notebooks that register their own)."""
    _REGISTRY.pop(name, None)
    network_spec.cache_clear()


def list_backbones() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_backbone(name: str, where: str = "backbone.name") -> BackboneEntry:
    if name not in _REGISTRY:
        raise EenasError(f"{where}: unknown backbone '{name}' (known: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def check_option(backbone: str, key: str, value: Any, where: str) -> Any:
    """``value`` if family ``backbone`` accepts it as option ``key``, else an error naming ``where``: one check for
    the arch file's field and the command line's option (``--width-mult``)."""
    problem = get_backbone(backbone).options[key].check(value)
    if problem is not None:
        raise EenasError(f"{where}: {problem}")
    return value


def head_spec(name: str) -> HeadSpec:
    """An exit head of any registered family, by name."""
    for entry in _REGISTRY.values():
        if name in entry.heads:
            return entry.heads[name]
    known = sorted({h for e in _REGISTRY.values() for h in e.heads})
    raise EenasError(f"unknown head '{name}' (known: {', '.join(known)})")


@functools.lru_cache(maxsize=256)
def network_spec(name: str, options: tuple[tuple[str, Any], ...], num_classes: int) -> NetworkSpec:
    """The spec of backbone ``name`` with ``options`` (name, value pairs), cached."""
    return get_backbone(name).spec(num_classes, **dict(options))


def _width(value: Any) -> str | None:
    return None if 0.1 <= value <= 2.0 else f"{value} is outside 0.1..2.0"


def _final_head(value: Any) -> str | None:
    return None if value in PAPER_HEADS else f"unknown head '{value}' (known: {', '.join(PAPER_HEADS)})"


register(BackboneEntry(
    "mobilenet_v2", "torchvision's MobileNetV2, stem stride 1 for 32x32 (blocks 1..17)",
    lambda num_classes, width_mult: mobilenet_v2_spec(width_mult).network(num_classes),
    "eenas.models.backbone:mobilenet_v2_backbone", HEADS,
    {"width_mult": Option(1.0, _width, "channel multiplier, rounded as torchvision does")},
))
register(BackboneEntry(
    "paper_mbv2", "the reference work's 12-block MobileNetV2 (blocks 0..11, exits after 0..9)",
    paper_mbv2_spec, "eenas.models.paper_mbv2:paper_mbv2_backbone", PAPER_HEADS,
    {"final_head": Option(DEFAULT_FINAL_HEAD, _final_head, "the final exit's head after block 11")},
))
register(BackboneEntry(
    "resnet20", "He et al.'s CIFAR ResNet-20, 1x1-conv shortcuts (blocks 1..9, exits after 1..8)",
    resnet20_spec, "eenas.models.resnet:resnet20_backbone", HEADS,
))
