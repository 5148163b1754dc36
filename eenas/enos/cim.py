"""Compute-in-memory (CIM) mode: the analog dot product and its ADC, as a functional model.

An SRAM-CIM macro sums the products of one column over ``array_rows`` word lines at once
on its bit line, and an ADC of ``adc_bits`` converts that partial sum; partial sums of a
longer reduction are added digitally.  So a layer's reduction (``C/groups x k x k`` per
output) is split into chunks of whole input channels that fit the rows (at least one
channel's kernel window per chunk), each chunk's partial sum is quantized by the ADC and
optionally disturbed by Gaussian noise first, and the quantized partial sums are summed.

The ADC's range is an LSQ step per layer (learned, initialised from the first batch), a
stand-in for the per-macro reference calibration real macros do.  Noise is given relative
to the ADC's full scale (``step * 2^(bits-1)``) and is drawn in training and inference alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from eenas.errors import EenasError
from eenas.quant.lsq import LsqQuantizer, qrange

Similarity = Callable[[torch.Tensor, torch.Tensor, int, int, int], torch.Tensor]


@dataclass(frozen=True)
class CimConfig:
    """Array rows summed per analog partial sum, ADC resolution, and relative analog noise."""

    array_rows: int = 64
    adc_bits: int = 5
    noise_std: float = 0.0

    def __post_init__(self) -> None:
        if self.array_rows < 1:
            raise EenasError(f"cim.array_rows: expected a positive integer, got {self.array_rows}")
        if not 2 <= self.adc_bits <= 16:
            raise EenasError(f"cim.adc_bits: expected 2..16, got {self.adc_bits}")
        if not (self.noise_std >= 0 and math.isfinite(self.noise_std)):
            raise EenasError(f"cim.noise_std: expected a non-negative number, got {self.noise_std}")

    def chunking(self, channels_per_group: int, kernel_area: int) -> tuple[int, int]:
        """(input channels per chunk, chunks per output) for one group's reduction."""
        per_chunk = max(1, self.array_rows // kernel_area)
        return per_chunk, math.ceil(channels_per_group / per_chunk)


class CimArray(nn.Module):
    """Computes a similarity as ADC-quantized, optionally noisy, analog partial sums."""

    def __init__(self, config: CimConfig) -> None:
        super().__init__()
        self.config = config
        self.adc = LsqQuantizer(config.adc_bits, signed=True)

    def partial_sums(
        self, similarity: Similarity, x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, groups: int
    ) -> torch.Tensor:
        """ADC outputs ``[N, groups, chunks, out_channels/groups, H, W]`` (before the digital sum)."""
        n, k_out = x.shape[0], w.shape[0]
        c_group, kh, kw = w.shape[1:]
        k_group = k_out // groups
        per_chunk, chunks = self.config.chunking(c_group, kh * kw)
        if chunks > 1:
            pad = chunks * per_chunk - c_group
            # Chunk j of group g becomes group (g, j) of a grouped convolution.
            x = F.pad(x.reshape(n, groups, c_group, *x.shape[2:]), (0, 0, 0, 0, 0, pad))
            x = x.reshape(n, groups * chunks * per_chunk, *x.shape[3:])
            w = F.pad(w.reshape(groups, k_group, c_group, kh, kw), (0, 0, 0, 0, 0, pad))
            w = w.reshape(groups, k_group, chunks, per_chunk, kh, kw).transpose(1, 2)
            w = w.reshape(groups * chunks * k_group, per_chunk, kh, kw)
        psum = similarity(x, w, stride, padding, groups * chunks)
        psum = psum.reshape(n, groups, chunks, k_group, *psum.shape[2:])
        if not bool(self.adc.initialized):
            self.adc.initialize(psum)
        if self.config.noise_std > 0:
            full_scale = self.adc.step.detach().abs() * -qrange(self.config.adc_bits, True)[0]
            psum = psum + torch.randn_like(psum) * (self.config.noise_std * full_scale)
        return self.adc(psum)

    def forward(
        self, similarity: Similarity, x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, groups: int
    ) -> torch.Tensor:
        psum = self.partial_sums(similarity, x, w, stride, padding, groups)
        return psum.sum(2).flatten(1, 2)
