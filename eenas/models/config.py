"""A registered backbone and its options: the one network description the builder, the cost model and the
arch file share (torch-free, like the specs it names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eenas.errors import EenasError
from eenas.models.registry import DEFAULT_BACKBONE, get_backbone, network_spec
from eenas.models.spec import NetworkSpec


@dataclass(frozen=True)
class BackboneConfig:
    """A registered backbone (:mod:`eenas.models.registry`) and its options.

    ``width_mult`` is a field of its own because budgets, searches and the training caches
    key on it; families without that option keep 1.0.  ``options`` holds the others, completed
    with their defaults on construction, so one network has one config (and one cache key).
    """

    name: str = DEFAULT_BACKBONE
    width_mult: float = 1.0
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        known, given = get_backbone(self.name).options, dict(self.options)
        unknown = sorted(set(given) - set(known) | ({"width_mult"} & set(given)))
        if unknown:
            raise EenasError(f"backbone: unknown field '{unknown[0]}'")
        object.__setattr__(self, "options", tuple((key, given.get(key, option.default))
                                                  for key, option in known.items() if key != "width_mult"))

    def option_items(self) -> tuple[tuple[str, Any], ...]:
        """Every option of the family as (name, value) pairs, as the arch file writes them."""
        width = (("width_mult", self.width_mult),) if "width_mult" in get_backbone(self.name).options else ()
        return width + self.options

    def spec(self, num_classes: int) -> NetworkSpec:
        return network_spec(self.name, self.option_items(), num_classes)
