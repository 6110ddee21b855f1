"""Fake quantization: grids, straight-through gradients, calibration and the integer reference."""

from __future__ import annotations

import pytest
import torch

from codesign.core.errors import CodesignError
from codesign.nn.models import build_model
from codesign.quantization.fake import (
    QuantConv2d,
    QuantLinear,
    calibrate,
    fake_quant_act,
    fake_quant_weight,
    get_bits,
    integer_conv2d,
    quantize_weight,
    set_bits,
    set_quant_mode,
)
from search_spaces.registry import make_space


def test_weight_quantization_is_per_channel_symmetric_with_ste():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 3, 3, 3, generator=g) * torch.linspace(0.1, 2.0, 6).view(-1, 1, 1, 1)
    q, scale = quantize_weight(w, 4)
    assert q.abs().max() <= 7 and q.dtype == torch.int32
    assert torch.allclose(scale, w.abs().reshape(6, -1).amax(1) / 7)
    for c in range(6):  # every channel uses its own full range
        assert q[c].abs().max() == 7
    w.requires_grad_(True)
    fq = fake_quant_weight(w, 4)
    assert torch.allclose(fq, q.float() * scale.view(-1, 1, 1, 1))
    fq.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))
    err2 = (fake_quant_weight(w, 2) - w).abs().mean()
    err8 = (fake_quant_weight(w, 8) - w).abs().mean()
    assert err2 > 10 * err8


def test_activation_quantization_is_asymmetric_and_clips_gradient():
    x = torch.linspace(-1.0, 3.0, 101, requires_grad=True)
    scale, zp = 4.0 / 15, 4  # 4-bit grid covering about [-1.07, 3]
    y = fake_quant_act(x, scale, zp, 4)
    levels = torch.round(y / scale + zp)
    assert levels.min() >= 0 and levels.max() <= 15 and len(levels.unique()) <= 16
    assert torch.allclose(y, (levels - zp) * scale)
    inputs = torch.tensor([5.0, 0.5], requires_grad=True)
    z = fake_quant_act(inputs, scale, zp, 4)
    assert z[0] == (15 - zp) * scale  # clipped at the top of the grid
    z.sum().backward()
    assert inputs.grad.tolist() == [0.0, 1.0]


def test_quant_layers_follow_network_order_and_set_bits():
    space = make_space("resnet_digits")
    arch = space.from_id("8x1_16x1_32x1")
    model = build_model(space, arch)
    n = len(space.network(arch).weighted_layers)
    w = tuple([2, 4, 8] * n)[:n]
    set_bits(model, w, (4,) * n)
    assert get_bits(model) == (w, (4,) * n)
    with pytest.raises(CodesignError, match="quantized layers"):
        set_bits(model, w[:-1], (4,) * (n - 1))
    with pytest.raises(CodesignError, match="weight_bits must be an integer"):
        set_bits(model, (1,) * n, (4,) * n)


def test_calibration_records_ranges_and_quantizes():
    g = torch.Generator().manual_seed(1)
    layer = QuantLinear(5, 3, weight_bits=4, act_bits=4)
    x = torch.randn(64, 5, generator=g) * 2 + 1
    ref = layer(x)  # float mode: exact
    assert torch.allclose(ref, torch.nn.functional.linear(x, layer.weight, layer.bias))
    calibrate(layer, [x[:32], x[32:]])
    assert float(layer.act_quant.min_val) == pytest.approx(float(x.min()))
    assert float(layer.act_quant.max_val) == pytest.approx(float(x.max()))
    out = layer(x)
    assert not torch.allclose(out, ref) and (out - ref).abs().mean() < 0.5 * ref.abs().mean()
    with pytest.raises(CodesignError, match="calibrate the model"):
        fresh = QuantLinear(5, 3).eval()  # in training mode QAT would take the first batch's range
        set_quant_mode(fresh, "quant")
        fresh(x)


@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "stride", "groups", "wbits", "abits", "bias"),
    [
        (3, 8, 3, 1, 1, 8, 8, False),
        (4, 6, 5, 2, 2, 4, 8, True),
        (8, 8, 3, 2, 8, 2, 4, False),
        (5, 7, 1, 1, 1, 3, 6, True),
    ],
)
def test_fake_quant_conv_matches_integer_reference(cin, cout, kernel, stride, groups, wbits, abits, bias):
    g = torch.Generator().manual_seed(cin * 100 + cout)
    conv = QuantConv2d(
        cin, cout, kernel, stride, kernel // 2, groups=groups, bias=bias, weight_bits=wbits, act_bits=abits
    )
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        if conv.bias is not None:
            conv.bias.copy_(torch.randn(cout, generator=g))
    x = torch.randn(3, cin, 9, 9, generator=g) * 1.5 + 0.3
    calibrate(conv, [x])
    fake = conv(x)
    exact = integer_conv2d(x, conv)
    assert fake.shape == exact.shape
    assert torch.allclose(fake, exact, rtol=1e-5, atol=1e-5 * float(exact.abs().max()))
    # and the reference is not trivially the float conv
    set_quant_mode(conv, "float")
    assert not torch.allclose(conv(x), exact, atol=1e-3)
