import pytest
import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from eenas.arch import Precision
from eenas.models.backbone import Backbone
from eenas.models.spec import mobilenet_v2_spec
from eenas.quant import LsqQuantizer, calibrate, quantize_backbone, quantize_head
from eenas.quant.lsq import qrange
from eenas.quant.modules import QConvBN, QResidual


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("signed", [True, False])
def test_round_trip_error_is_at_most_half_a_step(bits, signed):
    torch.manual_seed(bits)
    x = torch.randn(2048) if signed else torch.rand(2048) * 6
    q = LsqQuantizer(bits, signed=signed)
    y = q(x)
    step = q.step.detach().abs()
    qn, qp = qrange(bits, signed)
    inside = (x >= qn * step) & (x <= qp * step)
    assert inside.float().mean() > 0.5
    assert (y - x)[inside].abs().max() <= step / 2 + 1e-6
    codes = y / step
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.min() >= qn and codes.max() <= qp
    assert len(codes.round().unique()) <= 2**bits


def test_error_shrinks_with_more_bits():
    x = torch.randn(4096)
    errors = [(LsqQuantizer(b)(x) - x).pow(2).mean().item() for b in (2, 4, 8)]
    assert errors[0] > errors[1] > errors[2]


def test_float_bits_is_identity():
    x = torch.randn(10)
    assert torch.equal(LsqQuantizer(32)(x), x)


def test_per_channel_weights_get_one_step_per_output_channel():
    w = torch.randn(6, 3, 3, 3) * torch.arange(1, 7).view(-1, 1, 1, 1)
    q = LsqQuantizer(8, signed=True, channels=6)
    q(w)
    steps = q.step.detach()
    assert steps.shape == (6,) and torch.all(steps[1:] > steps[:-1])


def test_gradient_reaches_input_and_step():
    x = torch.randn(64, requires_grad=True)
    q = LsqQuantizer(4)
    q(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert q.step.grad is not None and q.step.grad.abs().item() > 0


def test_activation_sign_is_detected_from_calibration_data():
    q = LsqQuantizer(4, signed=None)
    q(torch.rand(100))
    assert not q._signed and qrange(4, False) == (0, 15)


def test_bn_folding_matches_conv_then_bn_in_eval():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(2, 4, 8, 8)
    ref = bn.eval()(conv(x))
    folded = QConvBN(conv, bn, weight_bits=32)
    assert torch.allclose(folded(x), ref, atol=1e-5)
    q8 = QConvBN(conv, bn, weight_bits=8)
    assert (q8(x) - ref).abs().max() < 0.05 * ref.abs().max()


def test_backbone_conversion_and_gradients():
    torch.manual_seed(0)
    model = quantize_backbone(Backbone(10, 0.25), Precision(4, 4))
    x = torch.randn(4, 3, 32, 32)
    calibrate(model, x)
    residual = sum(b.residual for b in mobilenet_v2_spec(0.25).blocks)
    assert residual > 0 and sum(isinstance(m, QResidual) for m in model.modules()) == residual
    assert not any(isinstance(m, Conv2dNormActivation) for m in model.modules())
    quantizers = [m for m in model.modules() if isinstance(m, LsqQuantizer)]
    assert all(q._ready for q in quantizers)
    model.train()
    model(x).sum().backward()
    first_conv = model.features[0][1][0].conv
    assert first_conv.weight.grad.abs().sum() > 0
    assert all(q.step.grad is not None for q in quantizers)


def test_quantized_state_dict_round_trips():
    torch.manual_seed(0)
    model = quantize_backbone(Backbone(10, 0.25), Precision(8, 8))
    x = torch.randn(2, 3, 32, 32)
    calibrate(model, x)
    fresh = quantize_backbone(Backbone(10, 0.25), Precision(8, 8))
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_float_precision_leaves_models_untouched():
    head = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    assert isinstance(quantize_head(head, Precision(32, 32))[1], nn.Linear)


@pytest.mark.parametrize("per_channel", [False, True])
def test_fused_lsq_matches_the_straight_through_formula(per_channel):
    from eenas.quant.lsq import fake_quantize

    torch.manual_seed(0)
    x = (torch.randn(4, 3, 5, 5) * 3).requires_grad_()
    step = (torch.rand(4 if per_channel else 1) + 0.2).requires_grad_()
    view = step.view(-1, 1, 1, 1) if per_channel else step
    fake_quantize(x, view, -8, 7, grad_scale=0.5).sum().backward()
    got = (x.grad.clone(), step.grad.clone())
    x.grad, step.grad = None, None
    # Reference: the autograd graph of round(clamp(x / s)) * s with a straight-through round.
    v = torch.clamp(x / view, -8, 7)
    scaled = (view - view * 0.5).detach() + view * 0.5  # gradient scale 0.5 on the step
    vs = torch.clamp(x / scaled, -8, 7)
    ((vs.round() - vs).detach() + vs).mul(scaled).sum().backward()
    assert torch.allclose(got[0], x.grad) and torch.allclose(got[1], step.grad, atol=1e-4)
    assert torch.equal(fake_quantize(x, view, -8, 7), v.round() * view)
