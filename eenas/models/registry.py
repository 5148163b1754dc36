"""The backbone registry: one entry per network family, in the style of timm's ``register_model``.

An entry gives the torch-free :class:`~eenas.models.spec.NetworkSpec` (what the cost model,
the arch validation, the search space and the pipeline read), its exit heads, its options
(the arch file's ``backbone`` fields besides ``name``) and the PyTorch builder.  The builder
is named by ``"module:function"`` and imported only when a network is built, so this module
and the cost model never import torch.  Each family registers itself at the end of its spec
module (``spec.py``: mobilenet_v2, ``paper_mbv2_spec.py``, ``resnet_spec.py``), which
``eenas/models/__init__.py`` imports; docs/backbones.md shows how to add one.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eenas.errors import EenasError

if TYPE_CHECKING:
    from eenas.models.spec import HeadSpec, NetworkSpec

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
