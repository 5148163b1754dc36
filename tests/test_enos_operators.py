"""ENOS operators and the CIM array: forward values, gradients, and bounds, on small inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from eenas.enos.cim import CimArray, CimConfig
from eenas.enos.operators import (
    OPERATORS,
    SHIFT_EXPONENTS,
    BinaryWeight,
    DeepShift,
    Xnor,
    binary_activations,
    binary_weights,
    conv_similarity,
    mf_similarity,
    power_of_two_weights,
)
from eenas.errors import EenasError
from eenas.quant.lsq import qrange


@pytest.fixture
def weights() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(6, 4, 3, 3) * 0.1


def test_binary_weights_are_a_signed_per_channel_scale(weights):
    wb = binary_weights(weights)
    for k in range(weights.shape[0]):
        alpha = weights[k].abs().mean()
        assert set(wb[k].unique().tolist()) <= {alpha.item(), -alpha.item()}
        assert torch.equal(torch.sign(wb[k]), torch.where(weights[k] >= 0, 1.0, -1.0))


def test_shift_weights_are_signed_powers_of_two(weights):
    ws = power_of_two_weights(weights)
    exponents = torch.log2(ws.abs())
    assert torch.equal(exponents, exponents.round())
    assert exponents.min() >= SHIFT_EXPONENTS[0] and exponents.max() <= SHIFT_EXPONENTS[1]
    assert torch.equal(torch.sign(ws), torch.where(weights >= 0, 1.0, -1.0))
    # Rounding is to the nearest power in the log domain.
    inside = (weights.abs() > 2.0 ** SHIFT_EXPONENTS[0]) & (weights.abs() < 1)
    assert (torch.log2(weights.abs()) - exponents)[inside].abs().max() <= 0.5


@pytest.mark.parametrize("op_cls", [BinaryWeight, DeepShift])
def test_constrained_weights_pass_gradients_straight_through(op_cls, weights):
    w = weights.clone().requires_grad_(True)
    upstream = torch.randn_like(w)
    (op_cls(6).weight(w) * upstream).sum().backward()
    assert torch.equal(w.grad, upstream)


def test_xnor_dot_product_is_a_popcount_of_agreeing_signs():
    """+-1 activations and weights: the dot product over n pairs is 2 * (agreements) - n, times the weight scale."""
    torch.manual_seed(4)
    op = Xnor(3)
    x, w = torch.rand(2, 5, 1, 1), torch.randn(3, 5, 1, 1)
    xb, wb = op(x, w)
    assert op.threshold.item() == pytest.approx(x.mean().item())  # initialised from the first batch
    assert set(xb.unique().tolist()) <= {-1.0, 1.0} and set(wb.sign().unique().tolist()) <= {-1.0, 1.0}
    y = op.similarity(xb, wb, 1, 0, 1)
    agree = (xb.sign().view(2, 1, 5) == wb.sign().view(1, 3, 5)).sum(-1)
    scale = w.abs().flatten(1).mean(1)
    assert torch.allclose(y.view(2, 3), (2 * agree - 5) * scale, atol=1e-6)


def test_binary_activations_gradient_is_clipped_straight_through():
    x = torch.tensor([-2.0, -0.5, 0.25, 3.0], requires_grad=True)
    t = torch.tensor(0.0, requires_grad=True)
    out = binary_activations(x, t)
    assert out.tolist() == [-1.0, -1.0, 1.0, 1.0]
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0] and t.grad.item() == -2.0


def test_mf_similarity_matches_its_definition():
    torch.manual_seed(1)
    x, w = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3)
    cols = F.unfold(x, 3, padding=1)  # [N, C*9, L]
    flat = w.flatten(1)  # [K, C*9]
    expected = (torch.sign(cols).unsqueeze(1) * flat.abs().unsqueeze(-1)
                + flat.sign().unsqueeze(-1) * cols.abs().unsqueeze(1)).sum(2).view(2, 4, 5, 5)
    assert torch.allclose(mf_similarity(x, w, 1, 1, 1), expected, atol=1e-5)


def test_mf_similarity_gradient_passes_straight_through_the_signs():
    x = torch.tensor([[[[0.5]], [[-2.0]]]], requires_grad=True)  # N=1, C=2, 1x1
    w = torch.tensor([[[[-1.5]], [[3.0]]]], requires_grad=True)  # K=1
    mf_similarity(x, w, 1, 0, 1).sum().backward()
    # d/dx = |w| (identity through sign(x)) + sign(w) sign(x); d/dw = sign(x) sign(w) + |x|.
    assert torch.equal(x.grad.flatten(), torch.tensor([1.5 - 1.0, 3.0 - 1.0]))
    assert torch.equal(w.grad.flatten(), torch.tensor([-1.0 + 0.5, -1.0 + 2.0]))


@pytest.mark.parametrize("name", list(OPERATORS))
def test_every_operator_runs_forward_and_backward(name):
    torch.manual_seed(2)
    op = OPERATORS[name](6)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = (torch.randn(6, 4, 3, 3) * 0.2).requires_grad_(True)
    xq, wq = op(x, w)
    y = op.similarity(xq, wq, 1, 1, 1)
    assert y.shape == (2, 6, 8, 8) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert w.grad is not None and w.grad.abs().sum() > 0


@pytest.mark.parametrize("name,bits", [("mac8", 8), ("mac4", 4)])
def test_mac_operators_quantize_weights_and_activations_to_their_bits(name, bits):
    torch.manual_seed(3)
    op = OPERATORS[name](6)
    xq, wq = op(torch.randn(2, 4, 8, 8), torch.randn(6, 4, 3, 3))
    assert len(xq.unique()) <= 2**bits
    for k in range(6):
        assert len(wq[k].unique()) <= 2**bits
    step = op.weight_quant.step.detach().abs().view(-1, 1, 1, 1)
    codes = wq / step
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    qn, qp = qrange(bits, True)
    assert codes.min() >= qn - 1e-4 and codes.max() <= qp + 1e-4


@pytest.mark.parametrize("rows,kernel,groups,channels", [(64, 1, 1, 16), (8, 1, 1, 20), (20, 3, 1, 7), (4, 3, 6, 6),
                                                         (18, 3, 2, 8)])
def test_cim_with_a_fine_adc_computes_the_convolution(rows, kernel, groups, channels):
    torch.manual_seed(4)
    x = torch.randn(2, channels, 6, 6)
    w = torch.randn(6, channels // groups, kernel, kernel)
    cim = CimArray(CimConfig(array_rows=rows, adc_bits=16))
    y = cim(conv_similarity, x, w, 1, kernel // 2, groups)
    expected = conv_similarity(x, w, 1, kernel // 2, groups)
    assert torch.allclose(y, expected, rtol=1e-3, atol=1e-2)


def test_cim_partial_sums_are_bounded_by_the_adc():
    torch.manual_seed(5)
    bits, rows = 4, 16
    cim = CimArray(CimConfig(array_rows=rows, adc_bits=bits))
    x, w = torch.randn(3, 40, 5, 5), torch.randn(8, 40, 1, 1)
    psum = cim.partial_sums(conv_similarity, x, w, 1, 0, 1)
    assert psum.shape == (3, 1, math.ceil(40 / rows), 8, 5, 5)
    step = cim.adc.step.detach().abs()
    codes = psum / step
    qn, qp = qrange(bits, True)
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.min() >= qn and codes.max() <= qp
    assert len(codes.round().unique()) <= 2**bits
    # A much larger input saturates at the ADC's full scale instead of growing.
    assert (cim.partial_sums(conv_similarity, 100 * x, w, 1, 0, 1) / step).abs().max() <= -qn + 1e-3


def test_cim_noise_perturbs_partial_sums_within_the_adc_range():
    torch.manual_seed(6)
    x, w = torch.randn(2, 16, 4, 4), torch.randn(4, 16, 1, 1)
    clean = CimArray(CimConfig(array_rows=8, adc_bits=6))
    noisy = CimArray(CimConfig(array_rows=8, adc_bits=6, noise_std=0.2))
    a, b = clean(conv_similarity, x, w, 1, 0, 1), noisy(conv_similarity, x, w, 1, 0, 1)
    assert not torch.allclose(a, b)
    step = noisy.adc.step.detach().abs()
    assert (noisy.partial_sums(conv_similarity, x, w, 1, 0, 1) / step).abs().max() <= 2**5 + 1e-3


def test_cim_passes_gradients_to_inputs_weights_and_the_adc_step():
    torch.manual_seed(7)
    x, w = torch.randn(2, 12, 4, 4, requires_grad=True), torch.randn(4, 12, 3, 3, requires_grad=True)
    cim = CimArray(CimConfig(array_rows=27, adc_bits=5))
    cim(mf_similarity, x, w, 1, 1, 1).square().mean().backward()
    assert x.grad.abs().sum() > 0 and w.grad.abs().sum() > 0 and cim.adc.step.grad is not None


@pytest.mark.parametrize("kwargs", [{"array_rows": 0}, {"adc_bits": 1}, {"noise_std": -0.1}])
def test_bad_cim_settings_are_user_errors(kwargs):
    with pytest.raises(EenasError):
        CimConfig(**kwargs)
