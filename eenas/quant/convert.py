"""Turn a float backbone or exit head into its fake-quantized (QAT) version, in place.

Rule: every tensor the accelerator writes to memory is quantized once, where it is
produced: after each ReLU6 or ReLU (unsigned), after each conv without activation (the
linear-bottleneck projection, a ResNet block's second conv and shortcut) and each
residual sum (signed), and after average pooling.  Max pooling keeps values on the grid, so
it needs no quantizer.  The network input is quantized at 8 bits whatever the activation
precision, because images are 8-bit; logits stay in high precision.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.ops.misc import Conv2dNormActivation

from eenas.precision import Precision
from eenas.quant.lsq import FLOAT_BITS, LsqQuantizer
from eenas.quant.modules import QConvBN, QLinear, QResidual

INPUT_BITS = 8


def _act(bits: int, signed: bool | None = None) -> LsqQuantizer:
    return LsqQuantizer(bits, signed=signed)


def _conv_bn_act(block: Conv2dNormActivation, p: Precision) -> nn.Sequential:
    conv, bn, *act = block
    return nn.Sequential(QConvBN(conv, bn, p.weights), *act, _act(p.activations, signed=not act))


def _bottleneck(block: InvertedResidual, p: Precision) -> nn.Module:
    layers = list(block.conv)
    converted = [_conv_bn_act(m, p) for m in layers[:-2]]
    project, bn = layers[-2:]
    converted.append(nn.Sequential(QConvBN(project, bn, p.weights), _act(p.activations, signed=True)))
    body = nn.Sequential(*converted)
    return QResidual(body, p.activations) if block.use_res_connect else body


def _convert_child(child: nn.Module, p: Precision) -> nn.Module | None:
    if isinstance(child, Conv2dNormActivation):
        return _conv_bn_act(child, p)
    if isinstance(child, InvertedResidual):
        return _bottleneck(child, p)
    if isinstance(child, nn.Linear):
        return QLinear(child, p.weights)
    if isinstance(child, nn.AdaptiveAvgPool2d):
        return nn.Sequential(child, _act(p.activations))
    if isinstance(child, (nn.ReLU, nn.ReLU6)):  # standalone: after a residual sum or a hidden FC
        return nn.Sequential(child, _act(p.activations, signed=False))
    return None


def _convert(module: nn.Module, p: Precision) -> None:
    for name, child in module.named_children():
        new = _convert_child(child, p)
        if new is None:
            _convert(child, p)
        else:
            setattr(module, name, new)


def quantize_head(head: nn.Module, p: Precision) -> nn.Module:
    """Convert an exit head (its input is already quantized by the backbone)."""
    if p.weights < FLOAT_BITS or p.activations < FLOAT_BITS:
        _convert(head, p)
    return head


def quantize_backbone(backbone: nn.Module, p: Precision) -> nn.Module:
    """Convert a :class:`~eenas.models.backbone.Backbone`, adding the 8-bit input quantizer."""
    if p.weights < FLOAT_BITS or p.activations < FLOAT_BITS:
        _convert(backbone, p)
        in_bits = INPUT_BITS if p.activations < FLOAT_BITS else FLOAT_BITS
        backbone.features[0] = nn.Sequential(_act(in_bits, signed=True), backbone.features[0])
    return backbone


@torch.no_grad()
def calibrate(model: nn.Module, *inputs: torch.Tensor) -> None:
    """Initialise every quantizer's step from one batch (in forward order)."""
    was_training = model.training
    model.eval()
    model(*inputs)
    model.train(was_training)
