"""LSQ quantizers as ONNX QuantizeLinear -> Clip -> DequantizeLinear, so tools read quantization, not float math.

ONNX runtimes do not all support the int4 types, and there is no int2 type, so every precision is
stored in int8/uint8 (signed/unsigned as the quantizer is) and 4 and 2 bits are a Clip to their
integer range between Q and DQ; at 8 bits the Clip would be the identity and is left out.  Zero
points are 0 (LSQ is symmetric), weights are quantized per output channel (axis 0) and
activations per tensor.  Rounding is half to even in both PyTorch and ONNX.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from eenas.quant.lsq import LsqQuantizer, qrange


class _QdqFunction(torch.autograd.Function):
    """``round(clamp(x / s, qn, qp)) * s``, exported by the TorchScript exporter as Q (-> Clip) -> DQ."""

    @staticmethod
    def forward(ctx, x, scale, qn, qp, per_channel):
        s = scale.view(-1, *([1] * (x.dim() - 1))) if per_channel else scale
        return torch.clamp(torch.round(x / s), qn, qp) * s

    @staticmethod
    def symbolic(g, x, scale, qn, qp, per_channel):
        dtype = torch.int8 if qn < 0 else torch.uint8
        channels = scale.type().sizes()[0] if per_channel else None
        zero = g.op("Constant", value_t=torch.zeros([channels] if per_channel else [], dtype=dtype))
        axis = {"axis_i": 0} if per_channel else {}
        q = g.op("QuantizeLinear", x, scale, zero, **axis)
        full = qrange(8, qn < 0)
        if (qn, qp) != full:
            low = g.op("Constant", value_t=torch.tensor(qn, dtype=dtype))
            high = g.op("Constant", value_t=torch.tensor(qp, dtype=dtype))
            q = g.op("Clip", q, low, high)
        return g.op("DequantizeLinear", q, scale, zero, **axis)


class FrozenQuantizer(nn.Module):
    """A trained :class:`LsqQuantizer` with its step as a constant, exported as Q/DQ."""

    def __init__(self, quantizer: LsqQuantizer) -> None:
        super().__init__()
        self.bits, self.per_channel = quantizer.bits, quantizer.per_channel
        self.qn, self.qp = qrange(quantizer.bits, bool(quantizer.signed))
        step = quantizer.step.detach().abs().clamp_min(1e-8).float()
        self.register_buffer("scale", step if self.per_channel else step.reshape(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _QdqFunction.apply(x, self.scale, self.qn, self.qp, self.per_channel)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A CPU float32 copy of ``model`` in eval mode with every enabled quantizer frozen for export.

    Computes exactly what the QAT model computes in eval mode (tested through onnxruntime).
    """
    model = copy.deepcopy(model).cpu().float().eval()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, LsqQuantizer):
                if not bool(child.initialized) and child.enabled:
                    raise ValueError(f"quantizer {name} was never calibrated")
                setattr(parent, name, FrozenQuantizer(child) if child.enabled else nn.Identity())
    return model
