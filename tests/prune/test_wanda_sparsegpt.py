"""Wanda against a numpy reference, SparseGPT against the OBS closed form, exact N:M patterns, the mask mechanism."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from netpress.calibrate import capture, oneshot
from netpress.errors import ConfigError
from netpress.prune import SparseGPTHparams, WandaHparams, get_masks, sparsegpt_module, sparsegpt_weight, wanda_mask
from netpress.quantize import GPTQHparams, export_codes


def correlated(n=256, cols=16, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=dtype) @ torch.randn(4, cols, generator=g, dtype=dtype)
    return x + 0.1 * torch.randn(n, cols, generator=g, dtype=dtype)


def test_wanda_equals_numpy_reference_through_calibration():
    torch.manual_seed(0)
    fc = nn.Linear(16, 8)
    x = correlated(dtype=torch.float32) * torch.linspace(0.1, 3, 16)  # very different input norms
    model = nn.Sequential(fc)
    w = fc.weight.detach().numpy().copy()
    oneshot(model, [x[:100], x[100:]], prune=WandaHparams(sparsity=0.5))
    score = np.abs(w) * np.linalg.norm(x.numpy(), axis=0)[None, :]
    expected = np.ones_like(w)
    for r in range(8):
        expected[r, np.argsort(score[r], kind="stable")[:8]] = 0
    assert np.array_equal(get_masks(model)["0.weight"].numpy(), expected)
    assert not np.array_equal(expected, (np.abs(w) >= np.median(np.abs(w), axis=1, keepdims=True)))  # not magnitude


def test_wanda_nm_equals_numpy_reference():
    w, sq = torch.randn(5, 16), torch.rand(16) * torch.linspace(0.01, 4, 16)
    mask = wanda_mask(w, sq, WandaHparams(n=2, m=4)).numpy()
    score = (np.abs(w.numpy()) * np.sqrt(sq.numpy())[None, :]).reshape(5, 4, 4)
    expected = np.zeros_like(score)
    for r, g in np.ndindex(5, 4):
        expected[r, g, np.argsort(-score[r, g], kind="stable")[:2]] = 1
    assert np.array_equal(mask, expected.reshape(5, 16))


def test_sparsegpt_mask_uses_the_obs_saliency():
    """One block: pruned = the lowest w^2 / [U]_jj^2 of the block (U: upper Cholesky factor of H^-1)."""
    x = correlated(cols=16) * torch.logspace(-1, 1, 16, dtype=torch.float64)  # very different input scales
    h = 2 * x.T @ x / x.shape[0]
    w = torch.randn(4, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    _, mask, _ = sparsegpt_weight(w, h, SparseGPTHparams(sparsity=0.5, blocksize=16, percdamp=0.01))
    damped = h + 0.01 * h.diagonal().mean() * torch.eye(16, dtype=h.dtype)
    d = torch.linalg.cholesky(torch.linalg.inv(damped), upper=True).diagonal()
    saliency = (w ** 2 / d[None, :] ** 2).reshape(-1)
    expected = torch.ones(64, dtype=w.dtype)
    expected[torch.argsort(saliency)[:32]] = 0
    assert torch.equal(mask.reshape(-1), expected)
    assert not torch.equal(expected, (w.abs().reshape(-1) > w.abs().median()).to(w.dtype))


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_exact_nm_patterns(n, m):
    w, sq = torch.randn(6, 32), torch.rand(32)
    for mask in (wanda_mask(w, sq, WandaHparams(n=n, m=m)),
                 sparsegpt_weight(w.double(), 2 * correlated(cols=32).T @ correlated(cols=32) / 256,
                                  SparseGPTHparams(n=n, m=m, blocksize=16))[1]):
        assert torch.equal(mask.reshape(6, 32 // m, m).sum(2), torch.full((6, 32 // m), float(n)))


def test_sparsegpt_single_removal_is_the_obs_closed_form():
    x = correlated(cols=8)
    h = 2 * x.T @ x / x.shape[0]
    w = torch.tensor([[0.001, 1.0, -2.0, 1.5, 0.7, -1.1, 0.9, 1.3]], dtype=torch.float64)
    new_w, mask, _ = sparsegpt_weight(w, h, SparseGPTHparams(sparsity=1 / 8, percdamp=0.01))
    assert mask.tolist() == [[0, 1, 1, 1, 1, 1, 1, 1]]
    hinv = torch.linalg.inv(h + 0.01 * h.diagonal().mean() * torch.eye(8, dtype=h.dtype))
    delta = -w[0, 0] / hinv[0, 0] * hinv[:, 0]
    assert torch.allclose(new_w[0], w[0] + delta, atol=1e-12)


def test_sparsegpt_beats_wanda_masking_alone_and_writes_the_parameter():
    torch.manual_seed(0)
    x = correlated(cols=32, dtype=torch.float32)
    fc = nn.Linear(32, 16, bias=False)
    w0 = fc.weight.detach().clone()
    stats = capture(fc, [x], {"fc": fc}, dtype=torch.float64)["fc"]
    sparsegpt_module(fc, stats.hessian, SparseGPTHparams(n=2, m=4, blocksize=32))
    mask = get_masks(fc)["weight"]
    assert float(mask.mean()) == 0.5
    assert torch.equal(fc.parametrizations.weight.original, fc.weight)  # updated values live in the parameter
    assert not torch.allclose(fc.weight, w0 * mask)  # kept weights moved (OBS update)
    err = lambda q: float(((x @ w0.T - x @ q.T) ** 2).sum())  # noqa: E731
    assert err(fc.weight.detach()) < 0.7 * err(w0 * mask)


def test_joint_sparsegpt_and_gptq_keeps_pattern_and_grid():
    torch.manual_seed(0)
    x = correlated(cols=32, dtype=torch.float32)
    net = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    oneshot(net, [x], prune=SparseGPTHparams(n=2, m=4, blocksize=16), quantize=GPTQHparams(bits=4))
    codes, masks = export_codes(net), get_masks(net)
    for name, module in (("0.weight", net[0]), ("2.weight", net[2])):
        w = module.weight.detach()
        assert torch.equal(codes[name].decode(), w)
        groups = (w.shape[0], w.shape[1] // 4)
        assert torch.equal(masks[name].reshape(*groups, 4).sum(2), torch.full(groups, 2.0))  # exact 2:4 mask
        assert bool(((w != 0) <= (masks[name] > 0)).all())  # a kept weight may round to 0, a pruned one stays 0
        assert len(w.unique()) <= 16 * w.shape[0]


def test_errors_before_any_change():
    with pytest.raises(ConfigError, match="N:M"):
        WandaHparams(n=4, m=4)
    with pytest.raises(ConfigError, match="sparsity"):
        SparseGPTHparams(sparsity=1.0)
    with pytest.raises(ConfigError, match="multiple"):
        SparseGPTHparams(n=2, m=4, blocksize=6)
    net = nn.Sequential(nn.Linear(6, 4))
    before = net[0].weight.detach().clone()
    with pytest.raises(ConfigError, match="not a multiple"):
        oneshot(net, [torch.randn(8, 6)], prune=WandaHparams(n=2, m=4))
    assert torch.equal(net[0].weight, before) and not get_masks(net)
