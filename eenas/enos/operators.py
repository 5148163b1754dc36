"""Inference operators a searchable layer can run: each maps (activation, weight) to an output.

An operator quantizes its inputs (QAT with LSQ where it applies) and then reduces them with
its similarity.  Four of the five are dot products with constrained weights; the
multiplication-free operator replaces the dot product by an add/sign similarity.

* ``mac8`` / ``mac4``: standard MAC, weights per output channel and activations per tensor
  fake-quantized to 8 or 4 bits (LSQ).
* ``binary``: binary-weight network (BWN, Rastegari et al. 2016): ``alpha_k * sign(w)`` with
  ``alpha_k = mean |w_k|`` per output channel; 8-bit activations.
* ``mf``: multiplication-free operator of MF-Net (Nasrin et al., TCAS-I 2021),
  ``x (+) w = sign(x) |w| + sign(w) |x|`` summed over the window, i.e. two additions per
  weight-input pair; 8-bit weights and activations; signs pass gradients straight through.
* ``shift``: DeepShift-Q (Elhoushi et al. 2021): ``sign(w) * 2^round(log2 |w|)`` with the
  exponent in ``[-7, 0]`` (a sign bit and a 3-bit shift), 8-bit activations.
* ``xnor``: XNOR-Net (Rastegari et al. 2016): binary weights as ``binary`` and binary
  activations ``sign(x - t)`` with a learned threshold ``t`` (inputs are ReLU outputs, so a
  plain sign would be constant); a dot product of +-1 vectors is an XNOR and a popcount,
  the natural operation of a CIM macro.

Weights are the layer's shared float weights; every constraint passes gradients straight
through (STE) so the float weights keep training.  ``storage_bits`` is the weight width the
digital energy model charges for fetching a weight (the core model knows 2, 4, 8 bits, so a
binary weight is charged as 2 bits; see docs/enos.md); ``act_bits`` likewise is the activation
width charged (and, except for ``xnor``, the LSQ width).  ``family`` groups operators whose
float weights mean the same thing, for per-family weights (``weights: family`` budgets).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from eenas.quant.lsq import LsqQuantizer

SHIFT_EXPONENTS = (-7, 0)  # 3-bit shift amount; with the sign bit a 4-bit weight code


def straight_through(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, identity gradient to ``x`` in the backward pass."""
    return x + (value - x).detach()


def binary_weights(w: torch.Tensor) -> torch.Tensor:
    """``alpha_k * sign(w)`` per output channel (dim 0); ``sign(0)`` counts as +1."""
    alpha = w.detach().abs().flatten(1).mean(1).view(-1, *([1] * (w.dim() - 1)))
    return torch.where(w >= 0, alpha, -alpha)


def power_of_two_weights(w: torch.Tensor, exponents: tuple[int, int] = SHIFT_EXPONENTS) -> torch.Tensor:
    """``sign(w) * 2^p`` with ``p = clamp(round(log2 |w|), *exponents)``; ``sign(0)`` counts as +1."""
    low, high = exponents
    p = torch.log2(w.detach().abs().clamp_min(2.0 ** (low - 1))).round().clamp(low, high)
    magnitude = torch.exp2(p)
    return torch.where(w >= 0, magnitude, -magnitude)


def conv_similarity(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, groups: int) -> torch.Tensor:
    """The dot product over each window: an ordinary convolution without bias."""
    return F.conv2d(x, w, None, stride, padding, 1, groups)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """``sign(x)`` with an identity gradient: the exact gradient is zero, and a layer that
    computes ``sign(w)|x|`` would then never learn the signs of its weights."""
    return straight_through(x, torch.sign(x))


def mf_similarity(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, groups: int) -> torch.Tensor:
    """``sum sign(x)|w| + sign(w)|x|`` over each window, as two convolutions of sign/abs maps.

    sign and abs act element-wise, so zero padding contributes nothing, as in hardware.
    """
    return conv_similarity(sign_ste(x), w.abs(), stride, padding, groups) + conv_similarity(
        x.abs(), sign_ste(w), stride, padding, groups
    )


class Operator(nn.Module, ABC):
    """Quantizes a layer's activations and weights the way the operator's hardware stores them."""

    name: ClassVar[str]
    family: ClassVar[str]
    act_bits: ClassVar[int] = 8
    storage_bits: ClassVar[int] = 8

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.act_quant = LsqQuantizer(self.act_bits, signed=None)

    @abstractmethod
    def weight(self, w: torch.Tensor) -> torch.Tensor:
        """The weights as the operator's hardware stores them (differentiable to ``w``)."""

    def similarity(self, x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, groups: int) -> torch.Tensor:
        return conv_similarity(x, w, stride, padding, groups)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.act_quant(x), self.weight(w)


class Mac8(Operator):
    name = "mac8"
    family = "lsq"

    def __init__(self, out_channels: int) -> None:
        super().__init__(out_channels)
        self.weight_quant = LsqQuantizer(self.storage_bits, signed=True, channels=out_channels)

    def weight(self, w: torch.Tensor) -> torch.Tensor:
        return self.weight_quant(w)


class Mac4(Mac8):
    name = "mac4"
    act_bits = 4
    storage_bits = 4


class BinaryWeight(Operator):
    name = "binary"
    family = "sign"
    storage_bits = 2

    def weight(self, w: torch.Tensor) -> torch.Tensor:
        return straight_through(w, binary_weights(w))


class MultiplicationFree(Mac8):
    name = "mf"
    family = "mf"

    def similarity(self, x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, groups: int) -> torch.Tensor:
        return mf_similarity(x, w, stride, padding, groups)


class DeepShift(Operator):
    name = "shift"
    family = "shift"
    storage_bits = 4

    def weight(self, w: torch.Tensor) -> torch.Tensor:
        return straight_through(w, power_of_two_weights(w))


def binary_activations(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """``sign(x - t)`` (+1 at the threshold), gradient passed where ``|x - t| <= 1`` (XNOR-Net's clipped STE)."""
    shifted = x - threshold
    clipped = shifted.clamp(-1.0, 1.0)
    return straight_through(clipped, torch.where(shifted >= 0, 1.0, -1.0).to(x.dtype))


class Xnor(BinaryWeight):
    name = "xnor"
    act_bits = 2  # charged at the core model's narrowest width; the activations are 1-bit

    def __init__(self, out_channels: int) -> None:
        nn.Module.__init__(self)  # no LSQ activation quantizer: a learned threshold instead
        self.threshold = nn.Parameter(torch.zeros(()))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not bool(self.initialized):  # start at the mean input, so both signs occur
            with torch.no_grad():
                self.threshold.fill_(x.detach().float().mean())
                self.initialized.fill_(True)
        return binary_activations(x, self.threshold), self.weight(w)


OPERATORS: dict[str, type[Operator]] = {
    op.name: op for op in (Mac8, Mac4, BinaryWeight, MultiplicationFree, DeepShift, Xnor)
}
