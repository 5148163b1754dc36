"""Built-in Stream-like cost model of multi-core edge accelerators (no torch, no ZigZag).

Layer level: :func:`layer_cost` of a :class:`ConvLayer`, :class:`PoolLayer` or
:class:`AddLayer` on one core of an :class:`Accelerator` from :func:`load_accelerator`.
Network level: :func:`cost_arch` (fast, for the search) and :func:`network_cost` (the full
per-layer report behind ``eenas cost``).  See docs/hardware.md.
"""

from eenas.hardware.accelerator import PRESETS, WEIGHT_MODES, Accelerator
from eenas.hardware.allocation import ALLOCATIONS, Allocation, use_cache_dir
from eenas.hardware.layer_cost import LayerCost, layer_cost
from eenas.hardware.layers import AddLayer, ConvLayer, PoolLayer
from eenas.hardware.loading import load_accelerator
from eenas.hardware.network import (
    ArchCost,
    ExitCost,
    LayerRecord,
    NetworkCost,
    backbone_allocation,
    check_exit_ratios,
    clear_caches,
    cost_arch,
    network_cost,
    parse_exit_ratios,
)

__all__ = [
    "ALLOCATIONS", "PRESETS", "WEIGHT_MODES", "Accelerator", "AddLayer", "Allocation", "ArchCost", "ConvLayer",
    "ExitCost", "LayerCost", "LayerRecord", "NetworkCost", "PoolLayer", "backbone_allocation", "check_exit_ratios",
    "clear_caches", "cost_arch", "layer_cost", "load_accelerator", "network_cost", "parse_exit_ratios",
    "use_cache_dir",
]
