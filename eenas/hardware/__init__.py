"""Built-in Stream-like cost model of multi-core edge accelerators (no torch, no ZigZag).

Layer level: :func:`layer_cost` of a :class:`ConvLayer`, :class:`PoolLayer` or
:class:`AddLayer` on one core of an :class:`Accelerator` from :func:`load_accelerator`.
See docs/hardware.md.
"""

from eenas.hardware.accelerator import PRESETS, Accelerator, load_accelerator
from eenas.hardware.layer_cost import LayerCost, layer_cost
from eenas.hardware.layers import AddLayer, ConvLayer, PoolLayer

__all__ = ["PRESETS", "Accelerator", "AddLayer", "ConvLayer", "LayerCost", "PoolLayer", "layer_cost", "load_accelerator"]
