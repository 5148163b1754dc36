"""Bit-widths: a plain value type the quantizers, the cost model and the arch file all use.

It sits below them all, so the quant and hardware layers need not import the arch-file format
(:mod:`eenas.arch` re-exports it).
"""

from __future__ import annotations

from dataclasses import dataclass

BITWIDTHS = (32, 8, 4, 2)  # 32 means float (no quantization)


@dataclass(frozen=True)
class Precision:
    weights: int = 8
    activations: int = 8

    @property
    def tag(self) -> str:
        return f"w{self.weights}a{self.activations}"
