"""Quantized building blocks: BN-folded conv, linear, residual add."""

from __future__ import annotations

import torch
from torch import nn

from eenas.quant.lsq import LsqQuantizer


class QConvBN(nn.Module):
    """Conv2d with its BatchNorm folded in, weights fake-quantized per output channel.

    The quantizer sees the folded weight ``w * gamma / sigma`` because that is the weight an
    integer accelerator stores.  BN uses its running statistics (frozen), the usual choice
    when fine-tuning a converged float model; gamma and beta still train.  The bias stays in
    high precision, as int32 accumulators hold it on the hardware.
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, weight_bits: int) -> None:
        super().__init__()
        self.conv, self.bn = conv, bn
        self.weight_quant = LsqQuantizer(weight_bits, signed=True, channels=conv.out_channels)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        weight = self.conv.weight * scale.view(-1, 1, 1, 1)
        bias = self.bn.bias - self.bn.running_mean * scale
        if self.conv.bias is not None:
            bias = bias + self.conv.bias * scale
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.folded()
        c = self.conv
        return nn.functional.conv2d(x, self.weight_quant(weight), bias, c.stride, c.padding, c.dilation, c.groups)


class QLinear(nn.Module):
    """Linear layer with per-output-channel fake-quantized weights (float bias)."""

    def __init__(self, linear: nn.Linear, weight_bits: int) -> None:
        super().__init__()
        self.linear = linear
        self.weight_quant = LsqQuantizer(weight_bits, signed=True, channels=linear.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight_quant(self.linear.weight), self.linear.bias)


class QResidual(nn.Module):
    """An inverted-residual block whose sum ``x + f(x)`` is re-quantized, as the SIMD core writes it."""

    def __init__(self, body: nn.Module, act_bits: int) -> None:
        super().__init__()
        self.body = body
        self.out_quant = LsqQuantizer(act_bits, signed=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_quant(x + self.body(x))
