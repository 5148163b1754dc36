"""Built-in Stream-like cost model of multi-core edge accelerators (no torch, no ZigZag).

Layer level: :func:`layer_cost` of a :class:`ConvLayer`, :class:`PoolLayer` or
:class:`AddLayer` on one core of an :class:`Accelerator` from :func:`load_accelerator`.
Network level: :func:`cost_arch` (fast, for the search) and :func:`network_cost` (the full
per-layer report behind ``eenas cost``).  See docs/hardware.md.
"""

from eenas.hardware.accelerator import PRESETS, Accelerator, load_accelerator
from eenas.hardware.layer_cost import LayerCost, layer_cost
from eenas.hardware.layers import AddLayer, ConvLayer, PoolLayer
from eenas.hardware.network import (
    ArchCost,
    ExitCost,
    LayerRecord,
    NetworkCost,
    check_exit_ratios,
    clear_caches,
    cost_arch,
    network_cost,
    parse_exit_ratios,
)

__all__ = [
    "PRESETS", "Accelerator", "AddLayer", "ArchCost", "ConvLayer", "ExitCost", "LayerCost", "LayerRecord",
    "NetworkCost", "PoolLayer", "check_exit_ratios", "clear_caches", "cost_arch", "layer_cost",
    "load_accelerator", "network_cost", "parse_exit_ratios",
]
