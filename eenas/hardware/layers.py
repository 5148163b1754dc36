"""Layer shapes the cost model understands: convolutions (incl. FC), pooling, additions.

Frozen and hashable, so per-layer costs can be cached by shape as Stream caches its
per-tile costs.  Sizes are validated here so a bad shape fails with one clear line.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

from eenas.errors import EenasError

POOL_MODES = ("max", "avg")


@functools.cache
def _int_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.type in ("int", int))


def _check_positive(layer: object) -> None:
    for name in _int_fields(type(layer)):
        value = getattr(layer, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise EenasError(f"{type(layer).__name__}.{name}: expected a positive integer, got {value!r}")


@dataclass(frozen=True)
class ConvLayer:
    """A 2-D convolution; ``height``/``width`` are the input's, padding is ``kernel // 2``.

    Depthwise: ``groups == in_channels == out_channels``.  Fully connected: ``kernel=1`` on a
    1x1 input.
    """

    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1

    def __post_init__(self) -> None:
        _check_positive(self)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise EenasError(
                f"ConvLayer.groups: {self.groups} does not divide in_channels={self.in_channels} "
                f"and out_channels={self.out_channels}"
            )

    @property
    def padding(self) -> int:
        return self.kernel // 2

    @property
    def out_height(self) -> int:
        return (self.height + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.width + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def kind(self) -> str:
        if self.groups > 1 and self.groups == self.in_channels == self.out_channels:
            return "depthwise"
        if self.kernel == 1:
            return "fc" if self.height == self.width == 1 else "pointwise"
        return "conv"

    @property
    def weight_count(self) -> int:
        return self.out_channels * (self.in_channels // self.groups) * self.kernel**2

    @property
    def macs(self) -> int:
        return self.weight_count * self.out_height * self.out_width

    @property
    def input_count(self) -> int:
        return self.in_channels * self.height * self.width

    @property
    def output_count(self) -> int:
        return self.out_channels * self.out_height * self.out_width


@dataclass(frozen=True)
class PoolLayer:
    """Max or average pooling without padding; ``stride`` defaults to ``kernel``.

    Global average pooling is ``kernel == height == width``.
    """

    channels: int
    height: int
    width: int
    kernel: int
    stride: int = 0
    mode: str = "max"

    def __post_init__(self) -> None:
        if self.stride == 0:
            object.__setattr__(self, "stride", self.kernel)
        _check_positive(self)
        if self.mode not in POOL_MODES:
            raise EenasError(f"PoolLayer.mode: expected one of {', '.join(POOL_MODES)}, got {self.mode!r}")
        if self.kernel > min(self.height, self.width):
            raise EenasError(f"PoolLayer.kernel: {self.kernel} is larger than the {self.height}x{self.width} input")

    kind = "pool"

    @property
    def out_height(self) -> int:
        return (self.height - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.width - self.kernel) // self.stride + 1

    @property
    def ops(self) -> int:
        return self.channels * self.out_height * self.out_width * self.kernel**2

    @property
    def output_count(self) -> int:
        return self.channels * self.out_height * self.out_width


@dataclass(frozen=True)
class AddLayer:
    """Element-wise addition of two ``channels x height x width`` tensors (a residual)."""

    channels: int
    height: int
    width: int

    def __post_init__(self) -> None:
        _check_positive(self)

    kind = "add"

    @property
    def ops(self) -> int:
        return self.channels * self.height * self.width

    @property
    def output_count(self) -> int:
        return self.ops


Layer = ConvLayer | PoolLayer | AddLayer

