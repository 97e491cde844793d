"""Runtime kernels vs the decoded dense layers (oracles: torch fp32 F.linear / F.conv2d / F.embedding)."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from netpress.quantize import UniformSpec, quantize_weights, share_weights, strip_quantization
from netpress.runtime import kernels
from netpress.runtime.kernels import LayerInfo, build
from netpress.runtime.weights import int8_rows, lowbit, pack4, pack6, unpack4, unpack6

warnings.filterwarnings("ignore", message=".*(Sparse|deprecated).*")


def _quantized(module: nn.Module, **spec) -> nn.Module:
    wrapper = nn.Sequential(module)
    quantize_weights(wrapper, UniformSpec(**spec), names=["0.weight"])
    return strip_quantization(wrapper)[0]


def _kmeans(module: nn.Module, bits: int) -> nn.Module:
    wrapper = nn.Sequential(module)
    share_weights(wrapper, bits=bits, names=["0.weight"])
    return strip_quantization(wrapper)[0]


def _info(tol: float = 0.01) -> LayerInfo:
    return LayerInfo("layer", quantized=True, requant_tol=tol)


def test_pack4_round_trip_odd_width():
    q = torch.randint(0, 16, (5, 7))
    assert torch.equal(unpack4(pack4(q), 7), q)
    assert pack4(q).shape == (5, 4)


@pytest.mark.parametrize("cols", [1, 5, 8, 385])
def test_pack6_round_trip(cols):
    q = torch.randint(0, 64, (3, cols))
    assert torch.equal(unpack6(pack6(q), cols).long(), q)
    assert pack6(q).shape == (3, 3 * -(-cols // 4))
    assert torch.equal(unpack6(pack6(q)[[2, 0]], cols).long(), q[[2, 0]])  # any gathered rows


@pytest.mark.parametrize("bits,expect_bits", [(4, 4), (6, 6), (8, 8)])
def test_lowbit_is_exact_for_uniform_per_channel(bits, expect_bits):
    torch.manual_seed(0)
    lin = _quantized(nn.Linear(40, 24), bits=bits, granularity="channel", symmetric=False)
    lb = lowbit(lin.weight)
    assert lb.bits == expect_bits and lb.codebook is None  # affine levels, packed
    torch.testing.assert_close(lb.dequantize().reshape(lb.shape), lin.weight, rtol=1e-6, atol=1e-7)


def test_lowbit_kmeans_shared_codebook_bit_exact():
    torch.manual_seed(0)
    lin = _kmeans(nn.Linear(64, 32), bits=5)
    lb = lowbit(lin.weight)
    assert lb.codebook is not None and lb.codebook.numel() <= 32
    assert torch.equal(lb.dequantize().reshape(lb.shape), lin.weight)


def test_lowbit_picks_the_smaller_of_row_grid_and_shared_codebook():
    torch.manual_seed(0)
    values = torch.tensor([*range(15), 40]).float() * 0.1  # 16 values; on a grid per row, but 41 levels wide
    w = values[torch.randint(0, 16, (64, 40))]
    lb = lowbit(w)
    assert lb.codebook is not None and lb.bits == 4  # 4-bit indices beat 6-bit levels + a scale/offset per row
    assert torch.equal(lb.dequantize().reshape(lb.shape), w)


def test_lowbit_refuses_unquantized_weights():
    assert lowbit(torch.randn(8, 300)) is None


def test_int8_exact_on_symmetric_grid_and_bounded_otherwise():
    torch.manual_seed(0)
    lin = _quantized(nn.Linear(30, 10), bits=8, granularity="channel", symmetric=True)
    i8 = int8_rows(lin.weight)
    assert i8.exact and i8.error < 1e-6
    torch.testing.assert_close(i8.q.float() * i8.scale[:, None], lin.weight, rtol=1e-6, atol=1e-7)
    km = int8_rows(_kmeans(nn.Linear(30, 10), bits=5).weight)
    assert not km.exact and 0 < km.error <= 0.5 / 127 + 1e-6  # round to nearest on a max/127 grid


@pytest.mark.parametrize("batch", [1, 7])
def test_int8_linear_matches_dense(batch):
    torch.manual_seed(0)
    lin = _quantized(nn.Linear(64, 48), bits=8, granularity="channel", symmetric=True)
    x = torch.randn(batch, 5, 64)
    fast = build("int8", lin, _info())
    ref = lin(x)
    # activations are quantized dynamically (7-bit, reduce_range): error ~ |x|max/127 * sum|w| per output
    bound = x.abs().max() / 63 * lin.weight.abs().sum(1).max()
    assert (fast(x) - ref).abs().max() <= bound
    assert fast(x).shape == ref.shape


@pytest.mark.parametrize("gain", [1.0, 25.0])  # large outputs: the kernel must not clip them
def test_int8_conv_matches_dense(gain):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=2, stride=2, dilation=2)
    with torch.no_grad():
        conv.weight.mul_(gain)
    conv = _quantized(conv, bits=8, granularity="channel", symmetric=True)
    x = torch.randn(2, 3, 13, 12)
    fast = build("int8", conv, _info())
    bound = x.abs().max() / 63 * conv.weight.abs().sum((1, 2, 3)).max()
    assert (fast(x) - conv(x)).abs().max() <= bound


def test_lowbit_linear_conv_embedding_match_dense():
    torch.manual_seed(0)
    lin = _quantized(nn.Linear(70, 600), bits=4, granularity="channel")  # > TILE_ROWS: several tiles
    x = torch.randn(3, 70)
    torch.testing.assert_close(build("lowbit", lin, _info())(x), lin(x), rtol=1e-5, atol=1e-5)
    conv = _kmeans(nn.Conv2d(2, 4, 3), bits=3)
    xc = torch.randn(2, 2, 9, 9)
    torch.testing.assert_close(build("lowbit", conv, _info())(xc), conv(xc), rtol=1e-5, atol=1e-5)
    emb = _quantized(nn.Embedding(50, 12), bits=4, granularity="channel")
    ids = torch.randint(0, 50, (4, 6))
    got = build("lowbit", emb, _info())(ids)
    # affine levels: exact to float32 rounding, 1e-6 of the row's largest value
    torch.testing.assert_close(got, emb(ids), rtol=1e-6, atol=1e-6 * float(emb.weight.abs().max()))


def test_csr_linear_matches_dense_and_needs_sparsity():
    torch.manual_seed(0)
    lin = nn.Linear(50, 20)
    with torch.no_grad():
        lin.weight.mul_(torch.rand_like(lin.weight) > 0.9)
    x = torch.randn(4, 50)
    info = LayerInfo("layer", quantized=False, requant_tol=0.01)
    torch.testing.assert_close(build("csr", lin, info)(x), lin(x), rtol=1e-5, atol=1e-6)
    assert build("csr", nn.Linear(50, 20), info) is None


def test_unquantized_layers_get_no_lowbit_kernels():
    info = LayerInfo("layer", quantized=False, requant_tol=0.01)
    lin = nn.Linear(10, 10)
    assert build("int8", lin, info) is None and build("lowbit", lin, info) is None
    assert build("dense", lin, info) is lin


def test_requant_tolerance_gates_int8_for_kmeans():
    lin = _kmeans(nn.Linear(30, 10), bits=5)
    assert build("int8", lin, _info(tol=0.0)) is None
    assert isinstance(build("int8", lin, _info(tol=0.01)), kernels.Int8Linear)
