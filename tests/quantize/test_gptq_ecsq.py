"""GPTQ with an entropy-constrained (ECSQ) codebook: a fixed point of plain ECSQ without correlations, a lower
layer-output error than plain ECSQ at about the same rate with them, and codes the file can store."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from netpress.calibrate import oneshot
from netpress.errors import ConfigError
from netpress.quantize import export_codes
from netpress.quantize.codebook import trainable_codebooks
from netpress.quantize.ecsq import ecsq_assign
from netpress.quantize.gptq import ECSQRounder, GPTQHparams, gptq_codes, output_error

from tests.quantize.test_gptq import correlated, hessian_of


def sparse_weights(rows: int = 24, cols: int = 32, keep: float = 0.4, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g) * (torch.rand(rows, cols, generator=g) < keep)


def index_entropy_bits(codes) -> float:
    """Total ideal code length of the kept indices, in bits (what the entropy coder is charged)."""
    idx = codes.indices[codes.indices >= 0]
    p = torch.bincount(idx).double() / idx.numel()
    p = p[p > 0]
    return float(-(p * p.log2()).sum()) * idx.numel()


@pytest.mark.parametrize("lam", [0.0, 0.05])
def test_isotropic_hessian_gives_plain_ecsq(lam):
    """With H = c I there is nothing to compensate and the least-output-error centroids are plain means: converged
    ECSQ is a fixed point of the sweep and refit."""
    w = sparse_weights()
    hp = GPTQHparams(bits=4, method="ecsq", lam=lam, percdamp=0.0)
    plain = gptq_codes(w, None, hp)
    swept = gptq_codes(w, 2.0 * torch.eye(w.shape[1], dtype=torch.float64), hp)
    assert plain.method == "ecsq" and swept.method == "ecsq-gptq"
    assert torch.equal(swept.indices, plain.indices)
    assert torch.allclose(swept.codebook, plain.codebook, atol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.02, 0.1])
def test_error_feedback_lowers_the_output_error_at_about_the_same_rate(lam):
    h = hessian_of(correlated(n=2048, cols=32)).float()
    w = sparse_weights()
    hp = GPTQHparams(bits=4, method="ecsq", lam=lam)
    plain, swept = gptq_codes(w, None, hp), gptq_codes(w, h, hp)
    assert output_error(w, swept.decode(), h) < 0.8 * output_error(w, plain.decode(), h)
    assert index_entropy_bits(swept) <= 1.05 * index_entropy_bits(plain) + 8


def test_codes_keep_zeros_and_use_every_level():
    w = sparse_weights()
    codes = gptq_codes(w, hessian_of(correlated(cols=32)).float(), GPTQHparams(bits=3, method="ecsq", lam=0.05))
    q = codes.decode()
    assert torch.equal(q == 0, w == 0) and torch.equal(codes.indices < 0, w == 0)
    assert codes.codebook.numel() <= 8
    assert torch.equal(torch.unique(codes.indices[codes.indices >= 0]), torch.arange(codes.codebook.numel()))
    assert torch.equal(torch.sort(torch.unique(q[q != 0])).values, torch.sort(torch.unique(codes.codebook)).values)


def test_rounder_takes_the_least_distortion_plus_rate_level():
    """Each column goes, entry by entry, to argmin_k (w - c_k)^2 + lam * -log2 p_k (brute force)."""
    g = torch.Generator().manual_seed(0)
    book = torch.tensor([-1.0, -0.2, 0.3, 1.1], dtype=torch.float64)
    probs = torch.tensor([0.1, 0.4, 0.4, 0.1], dtype=torch.float64)
    w = torch.randn(50, 3, generator=g, dtype=torch.float64)
    keep = torch.ones_like(w, dtype=torch.bool)
    keep[::7, 1] = False
    rounder = ECSQRounder(book, probs, 0.3, keep)
    for j in range(3):
        cost = (w[:, j:j + 1] - book) ** 2 + 0.3 * -torch.log2(probs)
        want = book[cost.argmin(1)] * keep[:, j]
        assert torch.equal(rounder.column(j, w), want)


def test_bad_rate_weights_are_refused():
    with pytest.raises(ConfigError, match="lam must be"):
        GPTQHparams(method="ecsq", lam=-0.1)
    with pytest.raises(ConfigError, match="lam must be"):
        GPTQHparams(method="ecsq", lam=math.inf)
    with pytest.raises(ConfigError, match="needs method='ecsq'"):
        GPTQHparams(method="uniform", lam=0.1)
    with pytest.raises(ConfigError, match="no nonzero weights"):
        gptq_codes(torch.zeros(4, 4), None, GPTQHparams(method="ecsq"))


def test_oneshot_ecsq_then_trainable_codebooks_fine_tune():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))
    x = correlated(n=256, cols=16).float()
    oneshot(net, [x], quantize=GPTQHparams(bits=3, method="ecsq", lam=0.02))
    assert {c.method for c in export_codes(net).values()} == {"ecsq-gptq"}
    assert not any(p.requires_grad for p in net.parameters() if p.dim() > 1)  # frozen codes
    before = net(x).detach()
    trainable_codebooks(net, ["0.weight", "2.weight"])
    assert torch.equal(net(x), before)  # same values, now learnable
    book = net[0].parametrizations.weight[0].codebook
    assert isinstance(book, nn.Parameter)
    net(x).pow(2).mean().backward()
    assert book.grad is not None and bool(book.grad.abs().sum() > 0)
    with pytest.raises(KeyError):
        trainable_codebooks(net, ["1.weight"])


def test_levels_are_the_least_output_error_ones_for_their_assignment():
    """The returned codebook is a stationary point of tr(E H E^T) over the levels (autograd), the assignment fixed."""
    h = hessian_of(correlated(n=2048, cols=32))
    w = sparse_weights().double()
    codes = gptq_codes(w, h, GPTQHparams(bits=4, method="ecsq", lam=0.02))
    book = codes.codebook.double().clone().requires_grad_(True)
    kept = codes.indices >= 0
    q = torch.zeros_like(w).masked_scatter(kept, book[codes.indices[kept]])
    e = w - q
    (torch.trace(e @ h @ e.T)).backward()
    scale = float(torch.trace(w @ h @ w.T)) / book.numel()
    assert float(book.grad.abs().max()) < 1e-4 * scale


def test_pretrained_pipeline_gptq_ecsq_writes_a_smaller_entropy_coded_file(tmp_path):
    """The one-shot recipe's ``gptq-ecsq``: the file loads back to the same outputs, and the rate term makes it
    smaller than GPTQ k-means levels at the same bits."""
    import netpress
    from netpress.pipeline.oneshot import OneshotQuantize

    def run(quantize: str) -> tuple[int, nn.Module]:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
        recipe = tmp_path / f"{quantize.split(',')[0]}.yaml"
        recipe.write_text(f"stages:\n  - quantize: {{{quantize}, bits: 5, select: Linear}}\n  - encode: {{coder: ans}}\n")
        out = tmp_path / f"{recipe.stem}.netp"
        calib = [correlated(n=128, cols=32, seed=s).float() for s in range(2)]
        netpress.compress_pretrained(net, calib, recipe, out=out, quality=lambda m: {}, report=tmp_path / "r.md")
        x = calib[0]
        loaded = netpress.load(out, model=nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8)))
        assert torch.equal(loaded(x), net(x))
        return out.stat().st_size, net

    ecsq_bytes, net = run("method: gptq-ecsq, lam: 0.1")
    assert {c.method for c in export_codes(net).values()} == {"ecsq-gptq"}
    kmeans_bytes, _ = run("method: gptq-kmeans")
    assert ecsq_bytes < 0.9 * kmeans_bytes
    with pytest.raises(ConfigError, match="lam: only for method gptq-ecsq"):
        OneshotQuantize(method="gptq", lam=0.1)
