"""k-means weight sharing: the fast 1-D k-means against scikit-learn, the sharing contract, fine-tuning, strip."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from netpress.errors import ConfigError, UnknownNameError
from netpress.models import ModelHparams, build_model
from netpress.prune.masks import apply_masks, get_masks
from netpress.quantize import (PRUNED, CodebookWeight, FinetuneHparams, export_codes, finetune_centroids, kmeans_1d,
                               kmeans_compression_rate, share_weights, strip_quantization)
from netpress.quantize.kmeans import assign_1d


def tiny_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))


def test_kmeans_matches_sklearn_lloyd_from_same_init():
    from sklearn.cluster import KMeans

    x = np.random.default_rng(0).normal(size=2000).astype(np.float32)
    ours = kmeans_1d(x, 16, init="density", max_iter=500)
    init = np.sort(x)[((np.arange(16) + 0.5) / 16 * 2000).astype(int)].reshape(-1, 1).astype(np.float64)
    ref = KMeans(16, init=init, n_init=1, max_iter=500, tol=0, algorithm="lloyd").fit(x.reshape(-1, 1).astype(np.float64))
    np.testing.assert_allclose(ours.centroids.numpy(), np.sort(ref.cluster_centers_.ravel()), rtol=1e-5, atol=1e-6)
    assert ours.converged
    assert ours.inertia == pytest.approx(ref.inertia_, rel=1e-5)


def test_assignment_is_nearest_centroid():
    x = np.random.default_rng(1).standard_cauchy(20000).astype(np.float32).clip(-50, 50)
    c = np.sort(np.random.default_rng(2).normal(size=40)).astype(np.float32)
    labels = assign_1d(x, c, table_bits=8)
    dist = np.abs(x[:, None] - c[None, :])
    assert np.allclose(dist[np.arange(len(x)), labels], dist.min(1))


@pytest.mark.parametrize("init", ["linear", "forgy", "density"])
def test_kmeans_inits_reduce_error(init):
    x = torch.randn(3000)
    r = kmeans_1d(x, 8, init=init)
    err = ((x - r.centroids[r.labels]) ** 2).sum().item()
    assert err == pytest.approx(r.inertia, rel=1e-4)
    assert err < ((x - x.mean()) ** 2).sum().item() / 10


def test_kmeans_bad_input():
    with pytest.raises(ConfigError):
        kmeans_1d(torch.randn(5), 8)
    with pytest.raises(ConfigError):
        kmeans_1d(torch.tensor([1.0, float("nan"), 2.0]), 2)
    with pytest.raises(UnknownNameError):
        kmeans_1d(torch.randn(50), 2, init="nope")


def test_share_weights_distinct_values_and_pruned_zeros_kept():
    net = tiny_mlp()
    masks = {"1.weight": (torch.rand(32, 64) > 0.7).float(), "3.weight": (torch.rand(4, 32) > 0.3).float()}
    apply_masks(net, masks)
    share_weights(net, {"1.weight": 3, "3.weight": 2})
    assert not get_masks(net)  # masks were stripped
    for name, bits in (("1.weight", 3), ("3.weight", 2)):
        w = dict(net.named_parameters()).get(name, None)
        w = net.get_submodule(name.split(".")[0]).weight
        assert torch.all(w[masks[name] == 0] == 0)
        nonzero = torch.unique(w[w != 0])
        assert len(nonzero) <= 2 ** bits
    codes = export_codes(net)
    assert set(codes) == {"1.weight", "3.weight"}
    assert torch.equal(codes["1.weight"].indices == PRUNED, masks["1.weight"] == 0)


def test_export_codes_decode_equals_effective_weight_exactly():
    net = share_weights(tiny_mlp(), 4, init="forgy")
    for name, codes in export_codes(net).items():
        w = net.get_submodule(name.rsplit(".", 1)[0]).weight
        assert codes.bits == 4 and codes.method == "kmeans" and codes.indices.dtype == torch.int8
        assert torch.equal(codes.decode(), w)


def test_centroid_finetuning_changes_centroids_not_assignments(synthetic):
    net = build_model(ModelHparams("lenet300"), synthetic.input_shape, synthetic.num_classes, seed=0)
    share_weights(net, 3)
    before = {k: (c.indices.clone(), c.codebook.clone()) for k, c in export_codes(net).items()}
    finetune_centroids(net, synthetic, FinetuneHparams(steps="20it", lr=1e-3), progress=False, device="cpu")
    after = export_codes(net)
    for name, (idx, book) in before.items():
        assert torch.equal(after[name].indices, idx)
        assert not torch.equal(after[name].codebook, book)


def test_centroid_gradient_is_sum_of_weight_gradients():
    lin = nn.Linear(6, 3)
    w0 = lin.weight.detach().clone()
    x = torch.randn(5, 6)
    share_weights(lin, 2, names=["weight"])
    lin(x).pow(2).sum().backward()
    q = lin.parametrizations.weight[0]
    dense = nn.Linear(6, 3)
    dense.weight.data.copy_(q.codes().decode())
    dense.bias.data.copy_(lin.bias.data)
    dense(x).pow(2).sum().backward()
    expected = torch.zeros(4).index_add_(0, q.indices.reshape(-1).long(), dense.weight.grad.reshape(-1))
    assert torch.allclose(q.codebook.grad, expected, atol=1e-6)
    assert not torch.equal(w0, q.codes().decode())


def test_strip_quantization_leaves_plain_decoded_weights():
    net = share_weights(tiny_mlp(), 3)
    expected = {k: c.decode() for k, c in export_codes(net).items()}
    copy.deepcopy(net)  # parametrized models stay copyable
    strip_quantization(net)
    assert not export_codes(net)
    for name, w in expected.items():
        p = net.get_submodule(name.rsplit(".", 1)[0]).weight
        assert isinstance(p, nn.Parameter) and p.requires_grad and torch.equal(p, w)


def test_share_weights_bad_input_before_any_change():
    net = tiny_mlp()
    before = copy.deepcopy(net.state_dict())
    for bad in (0, 17, 2.5):
        with pytest.raises(ConfigError):
            share_weights(net, bad)
    with torch.no_grad():
        net[3].weight.mul_((torch.arange(4) == 0).float()[:, None])  # 32 survivors
    with pytest.raises(ConfigError, match="nonzero"):
        share_weights(net, 6)
    with torch.no_grad():
        net[1].weight[0, 0] = float("inf")
    with pytest.raises(ConfigError, match="NaN/Inf"):
        share_weights(net, 2)
    assert not any(isinstance(m, CodebookWeight) for m in net.modules())
    assert set(net.state_dict()) == set(before)


def test_compression_rate_formula():
    assert kmeans_compression_rate(n=1000, k=16, b=32) == pytest.approx(32000 / (4000 + 512))
