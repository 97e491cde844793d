"""SVD identities: full rank reproduces the layer, the rank-k error is the discarded spectrum, rank selection."""
import math

import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.lowrank import (compression_rate, factorize_conv2d, factorize_linear, rank_for_energy, rank_for_ratio,
                              singular_values)


def _linear(m=12, n=7, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Linear(n, m, dtype=dtype)


def test_full_rank_linear_reproduces_outputs():
    layer = _linear(dtype=torch.float32)
    f = factorize_linear(layer, 7)
    x = torch.randn(20, 7)
    torch.testing.assert_close(f(x), layer(x), atol=1e-5, rtol=1e-5)


def test_full_rank_conv_reproduces_outputs():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, dilation=1)
    f = factorize_conv2d(conv, 5)  # min(5, 3*3*3) = 5
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(f(x), conv(x), atol=1e-5, rtol=1e-5)
    assert f[0].weight.shape == (5, 3, 3, 3) and f[1].weight.shape == (5, 5, 1, 1)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_rank_k_error_is_sum_of_discarded_squared_singular_values(k):
    layer = _linear()
    s = torch.linalg.svdvals(layer.weight.detach())
    f = factorize_linear(layer, k)
    w_k = f[1].weight.detach() @ f[0].weight.detach()
    err = (layer.weight.detach() - w_k).pow(2).sum().item()
    assert err == pytest.approx(s[k:].pow(2).sum().item(), rel=1e-9)
    assert torch.linalg.matrix_rank(w_k).item() == k
    torch.testing.assert_close(f[1].bias, layer.bias)


def test_rank_k_conv_error_matches_spectrum():
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 6, 3, dtype=torch.float64)
    s = singular_values(conv)
    f = factorize_conv2d(conv, 2)
    w_k = f[1].weight.reshape(6, 2) @ f[0].weight.reshape(2, -1)
    err = (conv.weight.reshape(6, -1) - w_k).pow(2).sum().item()
    assert err == pytest.approx(s[2:].pow(2).sum().item(), rel=1e-9)


def test_truncated_svd_is_no_worse_than_random_rank_k_projection():
    layer = _linear(seed=3)
    w = layer.weight.detach()
    f = factorize_linear(layer, 3)
    best = (w - f[1].weight @ f[0].weight).norm().item()
    q, _ = torch.linalg.qr(torch.randn(7, 3, dtype=torch.float64))
    assert best <= (w - w @ q @ q.T).norm().item()


def test_rank_for_energy():
    s = torch.tensor([4.0, 2.0, 1.0, 1.0])  # squares 16, 4, 1, 1 of 22
    assert rank_for_energy(s, 16 / 22) == 1
    assert rank_for_energy(s, 16 / 22 + 1e-6) == 2
    assert rank_for_energy(s, 0.95) == 3
    assert rank_for_energy(s, 1.0) == 4
    for bad in (0.0, -0.5, 1.01):
        with pytest.raises(ConfigError):
            rank_for_energy(s, bad)


def test_rank_for_ratio_meets_the_target_with_the_largest_rank():
    for m, n, ratio in [(300, 784, 2.0), (100, 300, 4.0), (10, 100, 8.0), (500, 800, 3.3)]:
        k = rank_for_ratio(m, n, ratio)
        assert compression_rate(m, n, k) >= ratio
        assert k == min(m, n) or compression_rate(m, n, k + 1) < ratio
    assert compression_rate(300, 784, 10) == pytest.approx(300 * 784 / (10 * 1085))
    assert rank_for_ratio(10, 10, 1000.0) == 1


def test_rank_above_min_dimension_is_config_error():
    layer = _linear()
    with pytest.raises(ConfigError, match="rank 8 is outside"):
        factorize_linear(layer, 8)
    with pytest.raises(ConfigError):
        factorize_linear(layer, 0)


def test_grouped_conv_is_rejected():
    with pytest.raises(ConfigError, match="groups"):
        factorize_conv2d(nn.Conv2d(4, 4, 3, groups=2), 1)


def test_factor_parameter_count():
    f = factorize_linear(nn.Linear(784, 300), 40)
    assert sum(p.numel() for p in f.parameters()) == 40 * (784 + 300) + 300
    assert math.isclose(compression_rate(300, 784, 40), 300 * 784 / (40 * 1085))
