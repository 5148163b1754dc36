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


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range ``(Qn, Qp)``: ``[-2^(b-1), 2^(b-1)-1]`` signed, ``[0, 2^b-1]`` unsigned."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return (x.round() - x).detach() + x


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; gradient multiplied by ``scale``."""
    return (x - x * scale).detach() + x * scale


def fake_quantize(x: torch.Tensor, step: torch.Tensor, qn: int, qp: int) -> torch.Tensor:
    return round_ste(torch.clamp(x / step, qn, qp)) * step


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
        step = scale_grad(self.step, 1.0 / math.sqrt(per_step * qp)).abs().clamp_min(1e-8)
        return fake_quantize(x, self._view(step, x), qn, qp)
