"""Learned-step-size fake quantization (LSQ, Esser et al., ICLR 2020).

``q(x) = round(clamp(x / s, Qn, Qp)) * s`` with a straight-through estimator for the
rounding, so gradients reach both ``x`` and the step ``s``; the step's gradient is scaled
by ``1 / sqrt(numel * Qp)`` as LSQ prescribes so it trains at the weights' pace.

Steps are initialised once from data by a small MSE search (LSQ's own ``2 mean|x| / sqrt(Qp)``
is poor for 8-bit activations), then learned.  32 bits means float: the quantizer is the
identity.
"""

from __future__ import annotations

import math

import torch
from torch import nn

FLOAT_BITS = 32
_INIT_FRACTIONS = torch.linspace(0.05, 1.0, 40)
_INIT_SAMPLES = 16384  # values per row the step search looks at (a strided sample)


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range ``(Qn, Qp)``: ``[-2^(b-1), 2^(b-1)-1]`` signed, ``[0, 2^b-1]`` unsigned."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


class _LsqFunction(torch.autograd.Function):
    """``round(clamp(x / s, Qn, Qp)) * s`` with LSQ's gradients, in few kernels.

    d/dx: 1 inside the range, 0 outside (straight-through).  d/ds: ``round(v) - v`` inside,
    ``Qn`` or ``Qp`` outside, summed over what shares the step and scaled by ``grad_scale``.
    Equivalent to the autograd graph of the formula with a straight-through round (tested),
    but about half the memory traffic, which keeps QAT close to float training speed.
    """

    @staticmethod
    def forward(ctx, x, step, qn, qp, grad_scale):
        v = x / step
        q = v.clamp(qn, qp).round_()
        ctx.save_for_backward(v, q)
        ctx.qn, ctx.qp, ctx.grad_scale, ctx.step_shape = qn, qp, grad_scale, step.shape
        return q * step

    @staticmethod
    def backward(ctx, grad):
        v, q = ctx.saved_tensors
        inside = (v >= ctx.qn) & (v <= ctx.qp)
        grad_x = grad * inside
        grad_step = grad * torch.where(inside, q - v, q)
        dims = tuple(range(1, grad.dim())) if ctx.step_shape[0] > 1 else tuple(range(grad.dim()))
        grad_step = grad_step.sum(dim=dims).reshape(ctx.step_shape) * ctx.grad_scale
        return grad_x, grad_step, None, None, None


def fake_quantize(x: torch.Tensor, step: torch.Tensor, qn: int, qp: int, grad_scale: float = 1.0) -> torch.Tensor:
    """LSQ fake quantization; ``step`` is a scalar-like or per-dim-0 tensor broadcast to ``x``."""
    return _LsqFunction.apply(x, step, qn, qp, grad_scale)


class LsqQuantizer(nn.Module):
    """Fake quantizer with a learned step, per tensor or per output channel (dim 0).

    For activations, ``signed=None`` decides the sign from the calibration batch: ReLU6
    outputs are unsigned, linear bottlenecks and residual sums are signed.
    """

    def __init__(self, bits: int, signed: bool | None = True, channels: int | None = None) -> None:
        super().__init__()
        self.bits = bits
        self.per_channel = channels is not None
        self.register_buffer("signed", torch.tensor(signed if signed is not None else True))
        self.auto_sign = signed is None
        self.step = nn.Parameter(torch.ones(channels or 1))
        self.register_buffer("initialized", torch.tensor(False))
        self._sync()
        # Keep Python copies of the flags so forward() never syncs with the device.
        self.register_load_state_dict_post_hook(lambda module, _keys: module._sync())

    def _sync(self) -> None:
        self._ready, self._signed = bool(self.initialized), bool(self.signed)

    @property
    def enabled(self) -> bool:
        return self.bits < FLOAT_BITS

    def extra_repr(self) -> str:
        kind = "per-channel" if self.per_channel else "per-tensor"
        return f"bits={self.bits}, {kind}, signed={self._signed}"

    def _view(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return t.view(-1, *([1] * (like.dim() - 1))) if self.per_channel else t

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """MSE-best step among fractions of the max magnitude (per channel where needed)."""
        if self.auto_sign:
            self.signed.fill_(bool((x < 0).any()))
        qn, qp = qrange(self.bits, bool(self.signed))
        flat = x.detach().reshape(x.shape[0], -1) if self.per_channel else x.detach().reshape(1, -1)
        flat = flat[:, :: max(1, flat.shape[1] // _INIT_SAMPLES)].float()
        top = flat.abs().amax(dim=1).clamp_min(1e-8)
        best_err = torch.full_like(top, float("inf"))
        best = top / qp
        for frac in _INIT_FRACTIONS.to(x.device):
            step = (top * frac / qp).unsqueeze(1)
            err = ((torch.clamp(flat / step, qn, qp).round() * step - flat) ** 2).mean(dim=1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, step.squeeze(1), best)
        self.step.copy_(best.expand_as(self.step))
        self.initialized.fill_(True)
        self._sync()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if not self._ready:
            self.initialize(x)
        qn, qp = qrange(self.bits, self._signed)
        per_step = x.numel() / self.step.numel()
        step = self.step.abs().clamp_min(1e-8)
        return fake_quantize(x, self._view(step, x), qn, qp, 1.0 / math.sqrt(per_step * qp))
