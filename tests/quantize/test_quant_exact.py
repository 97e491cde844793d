"""Quantizers against independent references: torch's fake-quantize at 2-8 bits on odd shapes and axes, the
closed forms of XNOR-Net / TWN, and LSQ's scale gradient (Esser et al. 2020, eq. 3 and 5)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from netpress.quantize import binarize, export_codes, ternarize
from netpress.quantize.uniform import UniformQAT, UniformSpec, calibrate, expand, fake_quantize, uniform_codes

SIGNS = [(True, True), (False, False), (False, True), (True, False)]  # (symmetric, signed)


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("symmetric,signed", SIGNS)
def test_per_tensor_bit_exact_vs_torch_at_every_width(bits, symmetric, signed):
    torch.manual_seed(bits)
    x = torch.randn(3, 7, 5) * 1.7 - 0.4  # odd sizes, off-centre
    spec = UniformSpec(bits=bits, symmetric=symmetric, signed=signed, calibration="mse")
    scale, zp = calibrate(x, spec)
    ref = torch.fake_quantize_per_tensor_affine(x, float(scale), int(zp), spec.qmin, spec.qmax)
    assert torch.equal(fake_quantize(x, scale, zp, spec.qmin, spec.qmax), ref)
    codes = uniform_codes(x, scale, zp, spec)
    assert torch.equal(codes.decode(), ref) and codes.codebook.numel() == 2 ** bits
    assert len(torch.unique(ref)) <= 2 ** bits


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
@pytest.mark.parametrize("shape,axis", [((5, 3, 7), 1), ((5, 3, 7), 2), ((5, 3, 7), -3), ((11, 9), 1), ((2, 3, 5, 7), -2)])
@pytest.mark.parametrize("symmetric,signed", SIGNS)
def test_per_channel_bit_exact_vs_torch_on_odd_shapes_and_axes(bits, shape, axis, symmetric, signed):
    torch.manual_seed(len(shape) * 10 + bits)
    scales = torch.linspace(0.05, 4, shape[axis]).reshape([-1 if d == axis % len(shape) else 1 for d in range(len(shape))])
    x = torch.randn(shape) * scales + 0.2
    spec = UniformSpec(bits=bits, symmetric=symmetric, signed=signed, granularity="channel", axis=axis)
    scale, zp = calibrate(x, spec)
    assert scale.shape == (shape[axis],)
    ref = torch.fake_quantize_per_channel_affine(x, scale, zp.int(), axis % len(shape), spec.qmin, spec.qmax)
    assert torch.equal(fake_quantize(x, expand(scale, x, spec), expand(zp, x, spec), spec.qmin, spec.qmax), ref)
    codes = uniform_codes(x, scale, zp, spec)
    assert codes.affine and codes.scale.numel() == shape[axis] and torch.equal(codes.decode(), ref)


def _pruned_linear(seed=0, rows=5, cols=13):
    torch.manual_seed(seed)
    lin = nn.Linear(cols, rows)
    with torch.no_grad():
        lin.weight.mul_(torch.linspace(0.2, 3.0, rows)[:, None])  # channels of different scales
        lin.weight[:, :2] = 0  # pruned
    return lin


def test_binary_scale_is_the_channel_mean_magnitude_and_the_l2_optimum():
    lin = _pruned_linear()
    w = lin.weight.detach().clone()
    binarize(lin)
    book = export_codes(lin)["weight"].codebook
    for c in range(w.shape[0]):
        alive = w[c][w[c] != 0]
        alpha = alive.abs().mean()  # XNOR-Net: argmin_a ||w - a sign(w)||^2
        torch.testing.assert_close(book[c], torch.stack([-alpha, alpha]))
        torch.testing.assert_close(lin.weight[c][w[c] != 0], alpha * alive.sign())
        err = lambda a: (alive - a * alive.sign()).pow(2).sum()  # noqa: E731
        assert err(alpha) < err(alpha * 1.05) and err(alpha) < err(alpha * 0.95)


@pytest.mark.parametrize("threshold", [0.3, 0.7, 1.2])
def test_ternary_matches_twn_reference(threshold):
    lin = _pruned_linear(seed=1, rows=4, cols=40)
    w = lin.weight.detach().numpy().copy()
    ternarize(lin, threshold=threshold)
    got = lin.weight.detach().numpy()
    codes = export_codes(lin)["weight"]
    for c, row in enumerate(w):  # numpy reference of TWN (Li et al. 2016), zeros excluded from the means
        alive = row != 0
        delta = threshold * np.abs(row[alive]).mean()
        big = np.abs(row) > delta
        alpha = np.abs(row[big]).mean()
        expected = np.where(row > delta, alpha, np.where(row < -delta, -alpha, 0.0))
        np.testing.assert_allclose(got[c], expected, rtol=1e-6, atol=0)
        assert ((codes.indices[c] == 1) == torch.from_numpy(alive & ~big)).all()
    assert 0 < (got == 0).mean() < 1


def test_ternary_threshold_changes_sparsity_monotonically():
    fractions = []
    for threshold in (0.2, 0.7, 1.2):
        lin = _pruned_linear(seed=2, rows=3, cols=200)
        ternarize(lin, threshold=threshold)
        fractions.append(float((lin.weight == 0).float().mean()))
    assert fractions[0] < fractions[1] < fractions[2]


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
@pytest.mark.parametrize("bits", [2, 4])
def test_lsq_gradients_follow_the_paper(granularity, bits):
    torch.manual_seed(bits)
    w = (torch.randn(6, 11) * 1.5).requires_grad_()
    spec = UniformSpec(bits=bits, granularity=granularity, axis=0)
    q = UniformQAT(w.detach(), spec, lsq=True)
    with torch.no_grad():
        q.scale.mul_(0.6)  # some weights fall outside the range
    r = torch.randn(6, 11)
    (q(w) * r).sum().backward()

    s = expand(q.scale.detach(), w, spec)
    v = w.detach() / s
    rounded = torch.round(v)
    inside = (rounded >= spec.qmin) & (rounded <= spec.qmax)
    # d x_hat / d s: round(v) - v inside the range, the clipped level outside (eq. 3)
    dyds = torch.where(inside, rounded - v, rounded.clamp(spec.qmin, spec.qmax))
    per_slice = w.numel() // q.scale.numel()
    g = 1 / math.sqrt(per_slice * spec.qmax)  # eq. 5: gradient scale 1 / sqrt(N_W * Q_P)
    expected = (r * dyds * g)
    expected = expected.sum() if granularity == "tensor" else expected.sum(1)
    torch.testing.assert_close(q.scale.grad.reshape(expected.shape), expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(w.grad, r * inside)  # straight-through inside the range, zero outside
    assert (~inside).any() and inside.any()


@pytest.mark.parametrize("make", [binarize, ternarize])
def test_clipped_ste_passes_gradients_only_inside_the_clip(make):
    lin = _pruned_linear(seed=3, rows=4, cols=9)
    w = lin.weight.detach().clone()
    make(lin, clip=0.5)
    r = torch.randn(4, 9)
    (lin.weight * r).sum().backward()
    inside = w.abs() <= 0.5 * w.abs().amax(1, keepdim=True)
    assert inside.any() and (~inside).any()
    assert torch.equal(lin.parametrizations.weight.original.grad, r * inside)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric,signed", SIGNS)
@pytest.mark.parametrize("offset", [0.0, 2.0])  # 2.0: all values positive, the range must still hold 0
def test_minmax_qparams_match_torch_observer(bits, symmetric, signed, offset):
    torch.manual_seed(bits)
    x = torch.randn(40, 3) * 0.5 + offset
    spec = UniformSpec(bits=bits, symmetric=symmetric, signed=signed)
    obs = torch.ao.quantization.MinMaxObserver(
        dtype=torch.qint8 if signed else torch.quint8, quant_min=spec.qmin, quant_max=spec.qmax,
        qscheme=torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine)
    obs(x)
    ref_scale, ref_zp = obs.calculate_qparams()
    scale, zp = calibrate(x, spec)
    torch.testing.assert_close(scale.reshape(()), ref_scale.reshape(()), rtol=1e-6, atol=0)
    if symmetric and not signed:  # torch: 128 at default 8 bits, the down-rounded midpoint for custom ranges
        assert int(zp) == (spec.qmax + 1) // 2
    else:
        assert int(zp) == int(ref_zp)
    zero = fake_quantize(torch.zeros(1), scale, zp, spec.qmin, spec.qmax)
    assert zero.item() == 0.0  # a pruned weight stays exactly zero


def test_linear_init_spans_the_range_evenly():
    from netpress.quantize.kmeans import INITS

    xs = np.sort(np.random.default_rng(0).normal(size=500))
    np.testing.assert_array_equal(INITS.get("linear")(xs, 7, None), np.linspace(xs[0], xs[-1], 7))
    dens = INITS.get("density")(xs, 4, None)
    np.testing.assert_array_equal(dens, xs[[62, 187, 312, 437]])  # CDF levels 1/8, 3/8, 5/8, 7/8
