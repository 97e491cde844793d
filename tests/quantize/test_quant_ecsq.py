"""ECSQ: the Lagrangian assignment against a brute-force oracle, the k-means limit, the rate/distortion trade."""
import itertools
import math

import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.quantize import export_codes
from netpress.quantize.ecsq import ecsq, ecsq_assign, ecsq_weights


def _entropy(labels: torch.Tensor) -> float:
    p = torch.bincount(labels).double()
    p = p[p > 0] / p.sum()
    return float(-(p * torch.log2(p)).sum())


def test_assignment_minimises_lagrangian_over_all_assignments():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(6, generator=gen, dtype=torch.float64)
    c = torch.tensor([-0.8, 0.1, 0.9], dtype=torch.float64)
    p = torch.tensor([0.2, 0.7, 0.1], dtype=torch.float64)
    for lam in (0.0, 0.05, 0.3, 2.0):
        def total(assign):
            return sum((float(w[i]) - float(c[a])) ** 2 - lam * math.log2(float(p[a])) for i, a in enumerate(assign))
        best = min(itertools.product(range(3), repeat=len(w)), key=total)
        got = ecsq_assign(w, c, p, lam).tolist()
        assert total(got) == pytest.approx(total(best), abs=1e-12)


def test_lambda_zero_is_nearest_centroid():
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(500, generator=gen)
    c = torch.sort(torch.randn(8, generator=gen)).values
    p = torch.softmax(torch.randn(8, generator=gen), 0)
    nearest = (w[:, None] - c[None, :]).abs().argmin(1)
    assert torch.equal(ecsq_assign(w, c, p, 0.0), nearest)
    result = ecsq(w, bits=3, lam=0.0)  # fixed point: every value at its nearest centroid
    assert torch.equal(result.labels, (w[:, None] - result.centroids[None, :]).abs().argmin(1))


def test_entropy_decreases_and_distortion_grows_with_lambda():
    w = torch.distributions.Laplace(0.0, 0.1).sample((4000,))
    ents, mses = [], []
    for lam in (0.0, 1e-3, 5e-3, 2e-2, 1e-1):
        r = ecsq(w, bits=4, lam=lam)
        ents.append(_entropy(r.labels))
        mses.append(float(((w - r.centroids[r.labels]) ** 2).mean()))
    assert all(a >= b - 1e-9 for a, b in zip(ents, ents[1:])), ents
    assert ents[-1] < ents[0] - 1.0
    assert mses[-1] > mses[0]


def test_ecsq_weights_gives_codes_matching_model_and_keeps_zeros():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad():
        net[0].weight[:, :4] = 0
    ecsq_weights(net, bits=3, lam=1e-3)
    codes = export_codes(net)
    assert set(codes) == {"0.weight", "2.weight"}
    c = codes["0.weight"]
    assert c.method == "ecsq" and c.codebook.numel() == 8
    assert torch.equal(c.decode(), net[0].weight)
    assert bool((c.indices[:, :4] == -1).all()) and bool((net[0].weight[:, :4] == 0).all())


def test_codebook_keeps_only_used_codewords_and_decodes_to_the_ecsq_solution():
    torch.manual_seed(1)
    w = torch.randn(40, 50)
    w[w.abs() < 0.3] = 0
    alive = w[w != 0]
    full = ecsq(alive, bits=5, lam=0.2)
    used = torch.unique(full.labels)
    assert 1 < len(used) < 32  # the rate term empties cells at this lam
    net = nn.Sequential(nn.Linear(50, 40))
    with torch.no_grad():
        net[0].weight.copy_(w)
    ecsq_weights(net, bits=5, lam=0.2)
    c = export_codes(net)["0.weight"]
    assert c.codebook.numel() == len(used) and c.levels == len(used)
    assert torch.equal(torch.unique(c.indices[c.indices >= 0]), torch.arange(len(used)))
    expected = torch.zeros_like(w)
    expected[w != 0] = full.centroids[full.labels]
    assert torch.equal(net[0].weight, expected)


def test_bad_lambda_raises_before_change():
    net = nn.Sequential(nn.Linear(4, 4))
    before = net[0].weight.detach().clone()
    with pytest.raises(ConfigError):
        ecsq_weights(net, bits=3, lam=-1.0)
    assert torch.equal(net[0].weight, before)


def test_assignment_matches_dense_argmin_with_duplicate_centroids_and_empty_cells():
    gen = torch.Generator().manual_seed(7)
    for trial in range(60):
        k = int(torch.randint(1, 40, (1,), generator=gen))
        w = torch.randn(300, generator=gen, dtype=torch.float64)
        c = torch.randn(k, generator=gen, dtype=torch.float64)
        if trial % 3 == 0:
            c[: k // 2] = c[0]  # repeated codewords
        p = torch.rand(k, generator=gen, dtype=torch.float64)
        if trial % 2 == 0:
            p[0] = 0.0  # an empty cell
        p = p / p.sum()
        lam = float(torch.rand(1, generator=gen)) * 0.5
        cost = (w[:, None] - c[None, :]) ** 2 - lam * torch.log2(p.clamp_min(1e-12))[None, :]
        got = cost.gather(1, ecsq_assign(w, c, p, lam)[:, None])[:, 0]
        torch.testing.assert_close(got, cost.min(1).values, rtol=0, atol=1e-12)
