"""Quantization-aware training: LSQ fake quantizers and model conversion."""

from eenas.quant.convert import calibrate, quantize_backbone, quantize_head
from eenas.quant.lsq import LsqQuantizer

__all__ = ["LsqQuantizer", "calibrate", "quantize_backbone", "quantize_head"]
