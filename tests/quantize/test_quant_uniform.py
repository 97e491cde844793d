"""Uniform affine quantization against torch's fake-quantize; calibration; STE; codes export."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.quantize import export_codes
from netpress.quantize.calibration import CALIBRATORS, aciq_factor
from netpress.quantize.uniform import (STEFakeQuantize, UniformQAT, UniformSpec, calibrate, expand, fake_quantize,
                                       quantize_weights, uniform_codes)

CASES = [(True, True), (False, False), (False, True), (True, False)]


@pytest.mark.parametrize("symmetric,signed", CASES)
@pytest.mark.parametrize("calibration", ["minmax", "mse", "percentile"])
def test_bit_exact_vs_torch_per_tensor(symmetric, signed, calibration):
    torch.manual_seed(0)
    x = torch.randn(50, 40) * 2 + 0.3
    spec = UniformSpec(bits=8, symmetric=symmetric, signed=signed, calibration=calibration)
    scale, zp = calibrate(x, spec)
    ref = torch.fake_quantize_per_tensor_affine(x, float(scale), int(zp), spec.qmin, spec.qmax)
    assert torch.equal(fake_quantize(x, scale, zp, spec.qmin, spec.qmax), ref)
    assert torch.equal(uniform_codes(x, scale, zp, spec).decode(), ref)


@pytest.mark.parametrize("symmetric,signed", CASES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_bit_exact_vs_torch_per_channel(symmetric, signed, axis):
    torch.manual_seed(1)
    x = torch.randn(6, 5, 7) * torch.linspace(0.1, 3, 7)
    spec = UniformSpec(bits=8, symmetric=symmetric, signed=signed, granularity="channel", axis=axis)
    scale, zp = calibrate(x, spec)
    ref = torch.fake_quantize_per_channel_affine(x, scale, zp.int(), axis % 3, spec.qmin, spec.qmax)
    ours = fake_quantize(x, expand(scale, x, spec), expand(zp, x, spec), spec.qmin, spec.qmax)
    assert torch.equal(ours, ref)
    codes = uniform_codes(x, scale, zp, spec)
    assert codes.affine and codes.codebook is None and codes.axis == axis % 3
    assert torch.equal(codes.scale, scale) and torch.equal(codes.zero_point, zp) and torch.equal(codes.decode(), ref)
    assert codes.indices.min() >= 0 and codes.indices.max() < 256


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8, 12, 16])
@pytest.mark.parametrize("granularity", ["tensor", "channel", "group"])
def test_round_trip_error_at_most_half_step_inside_range(bits, granularity):
    torch.manual_seed(bits)
    x = torch.randn(8, 12)
    spec = UniformSpec(bits=bits, symmetric=False, granularity=granularity, axis=1, group_size=4)
    scale, zp = calibrate(x, spec)
    s, z = expand(scale, x, spec), expand(zp, x, spec)
    lo, hi = (spec.qmin - z) * s, (spec.qmax - z) * s
    inside = (x >= lo) & (x <= hi)
    err = (fake_quantize(x, s, z, spec.qmin, spec.qmax) - x).abs()
    assert inside.float().mean() >= 0.5  # zero-point rounding may cut a sliver off the min-max range
    assert torch.all(err[inside] <= s[inside] / 2 * (1 + 1e-5))


def test_group_codes_decode_exactly_and_group_must_divide():
    x = torch.randn(4, 12)
    spec = UniformSpec(bits=3, granularity="group", axis=1, group_size=4)
    scale, zp = calibrate(x, spec)
    assert scale.shape == (12,)
    codes = uniform_codes(x, scale, zp, spec)
    assert torch.equal(codes.decode(), fake_quantize(x, expand(scale, x, spec), expand(zp, x, spec), -4, 3))
    with pytest.raises(ConfigError, match="does not divide"):
        quantize_weights(nn.Linear(10, 3), UniformSpec(bits=4, granularity="group", axis=1, group_size=4))


@pytest.mark.parametrize("clipped", [True, False])
def test_ste_gradient_identity_inside_zero_outside(clipped):
    x = torch.linspace(-3, 3, 61, requires_grad=True)
    scale, zp = torch.tensor(0.01), torch.tensor(0)  # range [-1.28, 1.27]
    STEFakeQuantize.apply(x, scale, zp, -128, 127, clipped).sum().backward()
    inside = (x.detach() >= -1.28) & (x.detach() <= 1.27)
    assert torch.all(x.grad[inside] == 1)
    assert torch.all(x.grad[~inside] == (0 if clipped else 1))


def test_quantize_weights_exports_exact_codes_and_keeps_zeros():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Conv1d(1, 4, 3))
    with torch.no_grad():
        net[0].weight[:, :4] = 0
    quantize_weights(net, UniformSpec(bits=4, granularity="channel", calibration="mse"))
    codes = export_codes(net)
    assert torch.equal(codes["0.weight"].decode(), net[0].weight)
    assert torch.equal(codes["2.weight"].decode(), net[2].weight)
    assert torch.all(codes["0.weight"].indices[:, :4] == -1) and torch.all(net[0].weight[:, :4] == 0)
    assert codes["0.weight"].axis == 0 and codes["0.weight"].method == "uniform"


def test_qat_lsq_forward_equals_codes_and_scale_learns():
    torch.manual_seed(0)
    w = torch.randn(5, 7, requires_grad=True)
    q = UniformQAT(w.detach(), UniformSpec(bits=3, granularity="channel"), lsq=True)
    out = q(w)
    assert torch.equal(out.detach(), q.codes(w).decode())
    out.pow(2).sum().backward()
    assert q.scale.grad is not None and q.scale.grad.abs().sum() > 0 and w.grad.abs().sum() > 0


def test_calibrators_shrink_error_and_aciq_constants():
    torch.manual_seed(0)
    x = torch.distributions.Laplace(0.0, 1.0).sample((1, 20000))
    spec = UniformSpec(bits=4, symmetric=True)

    def err(name):
        lo, hi = CALIBRATORS.get(name)(x, spec)
        from netpress.quantize.uniform import qparams
        s, z = qparams(lo, hi, spec)
        return (fake_quantize(x, s, z, spec.qmin, spec.qmax) - x).pow(2).mean().item()

    assert err("mse") < err("minmax") and err("aciq_laplace") < err("minmax")
    assert aciq_factor("laplace", 8) == pytest.approx(9.89, abs=0.02)
    assert aciq_factor("gaussian", 4) == pytest.approx(2.55, abs=0.02)


def test_bad_specs_raise_config_error():
    for kwargs in ({"bits": 0}, {"bits": 17}, {"granularity": "row"}, {"granularity": "group"},
                   {"calibration": "nope"}, {"percentile": 10}):
        with pytest.raises(ConfigError):
            UniformSpec(**kwargs)
    lin = nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
    with pytest.raises(ConfigError, match="NaN"):
        quantize_weights(lin)
