"""Soft weight-sharing: the prior's NLL and gradients against an independent float64 closed form; merging."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.quantize import export_codes
from netpress.quantize.soft_sharing import GaussianMixturePrior, flat_weights, merge_and_quantize


def _closed_form_nll(w, mu, log_var, logits, pi_zero):
    """-sum_i log sum_j pi_j N(w_i; mu_j, s_j^2), written from the density, float64."""
    mus = torch.cat([torch.zeros(1, dtype=w.dtype), mu])
    pis = torch.cat([torch.tensor([pi_zero], dtype=w.dtype), (1 - pi_zero) * torch.softmax(logits, 0)])
    var = torch.exp(log_var)
    dens = pis / torch.sqrt(2 * math.pi * var) * torch.exp(-(w[:, None] - mus) ** 2 / (2 * var))
    return -torch.log(dens.sum(1)).sum()


def test_nll_and_gradients_match_closed_form():
    gen = torch.Generator().manual_seed(0)
    prior = GaussianMixturePrior(torch.tensor([-0.3, 0.2, 0.5]), pi_zero=0.9, init_std=0.2).double()
    with torch.no_grad():
        prior.log_vars.copy_(torch.randn(4, generator=gen, dtype=torch.float64) * 0.3 - 2)
        prior.logits.copy_(torch.randn(3, generator=gen, dtype=torch.float64))
    w = (torch.randn(40, generator=gen, dtype=torch.float64) * 0.3).requires_grad_(True)
    got = prior(w)
    g_w, g_mu, g_lv, g_lg = torch.autograd.grad(got, [w, prior.means, prior.log_vars, prior.logits])
    mu = prior.means.detach().clone().requires_grad_(True)
    lv = prior.log_vars.detach().clone().requires_grad_(True)
    lg = prior.logits.detach().clone().requires_grad_(True)
    w2 = w.detach().clone().requires_grad_(True)
    want = _closed_form_nll(w2, mu, lv, lg, 0.9)
    e_w, e_mu, e_lv, e_lg = torch.autograd.grad(want, [w2, mu, lv, lg])
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    for a, b in ((g_w, e_w), (g_mu, e_mu), (g_lv, e_lv), (g_lg, e_lg)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert prior.log_mixing()[0].exp().item() == pytest.approx(0.9)  # the zero component's weight is fixed


def test_prior_training_pulls_weights_to_components():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(200) * 0.3)
    prior = GaussianMixturePrior.from_weights(w.detach(), components=5)
    opt = torch.optim.Adam([w, *prior.parameters()], lr=1e-2)
    before = float(prior(w).detach())
    for _ in range(100):
        opt.zero_grad()
        loss = prior(w)
        loss.backward()
        opt.step()
    assert float(prior(w).detach()) < before


def _assigned(w, prior):
    """Most probable component of each weight, in numpy float64 (no merging)."""
    mus = np.concatenate([[0.0], prior.means.detach().double().numpy()])
    lv = prior.log_vars.detach().double().numpy()
    lg = prior.logits.detach().double().numpy()
    pis = np.concatenate([[prior.pi_zero], (1 - prior.pi_zero) * np.exp(lg) / np.exp(lg).sum()])
    x = w.detach().double().numpy().reshape(-1, 1)
    logp = np.log(pis) - 0.5 * (np.log(2 * np.pi) + lv) - (x - mus) ** 2 / (2 * np.exp(lv))
    return mus[logp.argmax(1)].reshape(w.shape)


def test_merge_and_quantize_decodes_to_assigned_means():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3))
    prior = GaussianMixturePrior(torch.tensor([-0.2, -0.1, 0.1, 0.25]), pi_zero=0.6, init_std=0.05)
    expected = {"0.weight": _assigned(net[0].weight, prior), "2.weight": _assigned(net[2].weight, prior)}
    merge_and_quantize(net, prior, tol=0.0)
    codes = export_codes(net)
    for name, want in expected.items():
        c = codes[name]
        assert c.method == "soft_sharing" and c.codebook.numel() == 4 and c.bits == 2
        np.testing.assert_allclose(c.decode().double().numpy(), want, rtol=0, atol=1e-7)
        assert bool(((c.indices == -1) == (c.decode() == 0)).all())
    assert torch.equal(codes["0.weight"].decode(), net[0].weight)
    assert (net[0].weight == 0).any()  # the zero component pruned some weights


def test_merging_joins_close_means():
    prior = GaussianMixturePrior(torch.tensor([-0.2, 0.004, 0.1, 0.105]), pi_zero=0.5, init_std=0.05)
    net = nn.Sequential(nn.Linear(30, 30))
    merge_and_quantize(net, prior, tol=0.01)
    book = export_codes(net)["0.weight"].codebook
    assert book.numel() == 2  # 0.004 joined zero, 0.1 and 0.105 joined
    assert float(book[0]) == pytest.approx(-0.2) and float(book[1]) == pytest.approx(0.1025, abs=1e-6)


def test_flat_weights_and_errors():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    assert flat_weights(net).numel() == 6 + 2
    with pytest.raises(ConfigError):
        GaussianMixturePrior(torch.tensor([0.1]), pi_zero=1.0)
    with pytest.raises(ConfigError):
        merge_and_quantize(net, GaussianMixturePrior(torch.tensor([0.1])), tol=-1)


def test_soft_sharing_train_learns_prior_and_model_together():
    from netpress.data import load_data
    from netpress.train import TrainingHparams
    from netpress.quantize.soft_sharing import soft_sharing_train

    torch.manual_seed(0)
    data = load_data("synthetic")
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))
    prior = GaussianMixturePrior.from_weights(flat_weights(net).detach(), components=5)
    start = prior.means.detach().clone()
    with torch.no_grad():
        nll0 = float(prior(flat_weights(net)))
    hp = TrainingHparams(steps="60it", batch_size=64, lr=5e-3, optimizer="adam", eval_every="60it")
    soft_sharing_train(net, data, prior, hp, tau=2.0, device="cpu", progress=False)
    with torch.no_grad():
        assert float(prior(flat_weights(net))) < nll0
    assert not torch.equal(prior.means.detach(), start)
    with pytest.raises(ConfigError):
        soft_sharing_train(net, data, prior, hp, tau=-1.0)


def test_variance_floor_keeps_nll_finite():
    prior = GaussianMixturePrior(torch.tensor([0.5]), pi_zero=0.9)
    with torch.no_grad():
        prior.log_vars.fill_(-1e4)
    assert torch.isfinite(prior(torch.tensor([0.0, 0.5])))
