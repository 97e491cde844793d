"""GPTQ against a direct OBQ reference, round-to-nearest, its own blocking, and the uniform / k-means grids."""
from __future__ import annotations

import pytest
import torch

from netpress.errors import ConfigError
from netpress.quantize.gptq import (GPTQHparams, Rounder, UniformRounder, gptq_codes, inverse_cholesky, obs_sweep,
                                    output_error, search_range)
from netpress.quantize.uniform import fake_quantize


def correlated(n: int = 512, cols: int = 16, seed: int = 0) -> torch.Tensor:
    """Inputs whose columns are strongly correlated (a random mix of a few factors plus a little noise)."""
    g = torch.Generator().manual_seed(seed)
    factors = torch.randn(n, 4, generator=g, dtype=torch.float64)
    return factors @ torch.randn(4, cols, generator=g, dtype=torch.float64) + 0.1 * torch.randn(
        n, cols, generator=g, dtype=torch.float64)


def hessian_of(x: torch.Tensor) -> torch.Tensor:
    return 2 * x.T @ x / x.shape[0]


def weights(rows: int = 8, cols: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def reference_obq(w: torch.Tensor, h: torch.Tensor, quant, percdamp: float) -> torch.Tensor:
    """Plain OBQ in a fixed column order, float64, no Cholesky and no blocks: at column j the inverse Hessian of
    the columns not yet quantized is computed directly, and the rounding error is compensated on them."""
    h = h + percdamp * h.diagonal().mean() * torch.eye(h.shape[0], dtype=h.dtype)
    w, q = w.clone(), torch.zeros_like(w)
    for j in range(w.shape[1]):
        hinv = torch.linalg.inv(h[j:, j:])
        q[:, j] = quant(j, w[:, j])
        w[:, j:] -= ((w[:, j] - q[:, j]) / hinv[0, 0])[:, None] * hinv[0][None, :]
    return q


def test_gptq_equals_direct_obq_reference():
    w, h = weights(), hessian_of(correlated())
    hp = GPTQHparams(bits=3, blocksize=128, percdamp=0.01, clip_grid=1)
    scale, zp = search_range(w, h, hp.spec(), grid=1)
    q = obs_sweep(w, h, UniformRounder(w, h, hp), blocksize=4, percdamp=0.01)
    ref = reference_obq(w, h, lambda j, col: fake_quantize(col, scale, zp, hp.spec().qmin, hp.spec().qmax).double(),
                        0.01)
    assert torch.allclose(q, ref, atol=1e-9)
    assert not torch.allclose(q, fake_quantize(w, scale[:, None], zp[:, None], -4, 3).double())  # not plain RTN


@pytest.mark.parametrize("act_order", [False, True])
def test_blocked_equals_unblocked(act_order):
    w, h = weights(6, 24), hessian_of(correlated(cols=24))
    hp = GPTQHparams(bits=4, act_order=act_order)
    results = [obs_sweep(w, h, UniformRounder(w, h, hp), blocksize=b, percdamp=0.01, act_order=act_order)
               for b in (1, 5, 24, 128)]
    for q in results[1:]:
        assert torch.allclose(q, results[0], atol=1e-9)


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("granularity", ["channel", "group"])
def test_gptq_output_error_below_round_to_nearest(bits, granularity):
    x, w = correlated(cols=32), weights(8, 32)
    h = hessian_of(x)
    hp = GPTQHparams(bits=bits, granularity=granularity, group_size=8, clip_grid=1)
    gptq = gptq_codes(w.float(), h, hp).decode().double()
    rtn = gptq_codes(w.float(), None, hp).decode().double()
    err = lambda q: float(torch.linalg.norm(x @ w.T - x @ q.T))  # noqa: E731
    assert err(gptq) < 0.8 * err(rtn)
    assert output_error(w, gptq, h) < output_error(w, rtn, h)


@pytest.mark.parametrize("granularity,act_order", [("channel", False), ("channel", True), ("group", False),
                                                   ("group", True)])
def test_values_lie_on_the_uniform_grid(granularity, act_order):
    w, h = weights(4, 16), hessian_of(correlated())
    hp = GPTQHparams(bits=3, granularity=granularity, group_size=4, act_order=act_order)
    rounder = UniformRounder(w, h, hp)
    q = obs_sweep(w, h, rounder, percdamp=hp.percdamp, act_order=act_order).float()
    width = 4 if granularity == "group" else 16
    s = rounder.scale.repeat_interleave(width, 1)
    z = rounder.zp.repeat_interleave(width, 1)
    levels = q / s + z
    assert torch.allclose(levels, levels.round(), atol=1e-3)  # every value is (integer - z) * s of its slice
    assert levels.round().min() >= -4 and levels.round().max() <= 3
    codes = rounder.codes(q, w.shape)
    assert torch.equal(codes.decode(), q) and codes.method == "uniform"
    assert torch.equal(gptq_codes(w, h, hp).decode(), q)


def test_pruned_zeros_stay_zero():
    w, h = weights(4, 16).float(), hessian_of(correlated())
    w[:, ::3] = 0
    for hp in (GPTQHparams(bits=3), GPTQHparams(bits=2, method="kmeans")):
        q = gptq_codes(w, h, hp).decode()
        assert torch.equal(q == 0, w == 0) or bool(((w == 0) <= (q == 0)).all())
        assert bool((q[w == 0] == 0).all())


def test_kmeans_gptq_beats_nearest_assignment():
    x, w = correlated(cols=32), weights(16, 32)
    h = hessian_of(x)
    hp = GPTQHparams(bits=3, method="kmeans")
    gptq = gptq_codes(w.float(), h, hp)
    nearest = gptq_codes(w.float(), None, hp)
    assert gptq.codebook.dim() == 1 and gptq.codebook.numel() == 8
    assert torch.equal(gptq.codebook, nearest.codebook)  # same codebook, only the assignment differs
    assert torch.equal(gptq.decode(), gptq.codebook[gptq.indices])
    assert output_error(w, gptq.decode(), h) < output_error(w, nearest.decode(), h)


def test_obs_single_weight_removal_closed_form():
    """Removing weight 0 alone: delta = -w_0 / [H^-1]_00 * H^-1[:, 0] (the OBS update)."""
    w, h = weights(3, 10), hessian_of(correlated(cols=10))

    class DropFirst(Rounder):
        def column(self, j, live):
            return live[:, j] * (0.0 if j == 0 else 1.0)

    q = obs_sweep(w, h, DropFirst(), blocksize=4, percdamp=0.01)
    hinv = torch.linalg.inv(h + 0.01 * h.diagonal().mean() * torch.eye(10, dtype=h.dtype))
    expected = w - (w[:, 0] / hinv[0, 0])[:, None] * hinv[0][None, :]
    assert torch.allclose(q, expected, atol=1e-10) and bool((q[:, 0] == 0).all())


def test_inverse_cholesky_and_errors():
    h = hessian_of(correlated())
    u = inverse_cholesky(h, 0.01)
    damped = h + 0.01 * h.diagonal().mean() * torch.eye(16, dtype=h.dtype)
    assert torch.allclose(u.T @ u, torch.linalg.inv(damped), atol=1e-8) and torch.equal(u, u.triu())
    with pytest.raises(ConfigError, match="bits"):
        GPTQHparams(bits=0)
    with pytest.raises(ConfigError, match="method"):
        GPTQHparams(method="nope")
    with pytest.raises(ConfigError, match="group_size"):
        gptq_codes(torch.randn(4, 10), None, GPTQHparams(granularity="group", group_size=4))
    with pytest.raises(ConfigError, match="2-D"):
        gptq_codes(torch.randn(4, 2, 3, 3), None, GPTQHparams(granularity="group", group_size=2))


def test_clip_search_never_worse_than_min_max_and_pays_with_outliers():
    w, h = weights(8, 16), hessian_of(correlated())
    w[:, 3] *= 6  # an outlier column: clipping it pays at low bits
    spec = GPTQHparams(bits=3).spec()
    row_err = lambda s, z: ((lambda e: ((e @ h) * e).sum(1))(  # noqa: E731
        w - fake_quantize(w, s[:, None], z[:, None], spec.qmin, spec.qmax).double()))
    searched, minmax = row_err(*search_range(w, h, spec, grid=20)), row_err(*search_range(w, h, spec, grid=1))
    assert bool((searched <= minmax).all()) and float(searched.sum()) < 0.95 * float(minmax.sum())
