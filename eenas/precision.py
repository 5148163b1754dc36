"""Bit-widths: a plain value type the quantizers, the cost model and the arch file all use.

It sits below them all, so the quant and hardware layers need not import the arch-file format
(:mod:`eenas.arch` re-exports it).
"""

from __future__ import annotations

from dataclasses import dataclass

from eenas.errors import EenasError

BITWIDTHS = (32, 8, 4, 2)  # 32 means float (no quantization)


def check_bits(name: str, bits: int) -> int:
    """``bits`` if it is a supported bit-width, else an error naming ``name`` (an option, field or node).

    The one check behind every bit-width a user gives (options, files, ONNX graphs): any other value would be
    costed as if the hardware had it (-8 bits gives negative energy).
    """
    if bits not in BITWIDTHS:
        raise EenasError(f"{name} {bits}: must be one of {', '.join(map(str, BITWIDTHS))} (32 means float)")
    return bits


@dataclass(frozen=True)
class Precision:
    weights: int = 8
    activations: int = 8

    @property
    def tag(self) -> str:
        return f"w{self.weights}a{self.activations}"


FLOAT = Precision(32, 32)  # the unquantized network; its tag keys float accuracies (registry, tables)
