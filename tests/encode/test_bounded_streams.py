"""Streams of narrow integer symbols are coded block by block without widened copies, to the same bytes."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from netpress.encode import ans, bits, huffman
from netpress.encode.streams import decode_stream, encode_stream


def _symbols(n=30_001, k=17, seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 0.3))).astype(np.int8)


def test_histogram_equals_bincount_in_any_block_size(monkeypatch):
    x = _symbols()
    ref = np.bincount(x.astype(np.int64), minlength=40)
    monkeypatch.setattr(bits, "HIST_BLOCK", 1000)
    assert np.array_equal(bits.histogram(x, 40), ref)
    assert np.array_equal(bits.histogram(x, 3), np.bincount(x.astype(np.int64), minlength=3))  # grows like bincount
    assert bits.histogram(np.zeros(0, np.int8), 4).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("coder", ["ans", "huffman", "auto", "packed"])
def test_blocked_narrow_stream_has_the_same_bytes_as_one_wide_block(monkeypatch, coder):
    x = _symbols()
    wide = encode_stream(x.astype(np.int64), 17, coder)
    monkeypatch.setattr(ans, "ENCODE_BLOCK", 999)
    monkeypatch.setattr(bits, "HIST_BLOCK", 777)
    narrow = encode_stream(x, 17, coder)
    assert narrow == wide
    assert np.array_equal(decode_stream(narrow[0], {"section": "s", **narrow[1]}), x)


def test_ans_encode_of_int8_symbols_never_widens_the_whole_stream(monkeypatch):
    x = _symbols(1_000_000, k=16)
    monkeypatch.setattr(ans, "ENCODE_BLOCK", 1 << 14)
    monkeypatch.setattr(bits, "HIST_BLOCK", 1 << 14)
    tracemalloc.start()
    try:
        data, params = ans.encode(x, 16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(data) + 1_000_000  # the payload (~0.5 MB here) + blocks; widened whole: 4-8 MB more
    assert np.array_equal(ans.decode(data, len(x), 16, params), x)
    assert huffman.encode(x, 16) == huffman.encode(x.astype(np.int64), 16)


def _all_forms():
    import torch

    from netpress.quantize.codes import Codes

    g = torch.Generator().manual_seed(0)
    idx = torch.randint(-1, 8, (37, 12), generator=g, dtype=torch.int8)
    scale_r, scale_c = torch.rand(37, generator=g) + 0.1, torch.rand(12, generator=g) + 0.1
    zp_r, zp_c = torch.randint(0, 8, (37,), generator=g), torch.randint(0, 8, (12,), generator=g)
    return [
        Codes(idx, torch.randn(8, generator=g), 3),
        Codes(idx, torch.randn(37, 8, generator=g), 3, axis=0),
        Codes(idx, torch.randn(12, 8, generator=g), 3, axis=1),
        Codes(idx, None, 3, axis=0, scale=scale_r, zero_point=zp_r, qmin=-4),
        Codes(idx, None, 3, axis=1, scale=scale_c, zero_point=zp_c),
        Codes(idx, None, 3, axis=1, scale=torch.rand(37 * 3, generator=g),
              zero_point=torch.zeros(37 * 3, dtype=torch.long), group_size=4),
        Codes(idx, None, 3, axis=None, scale=torch.tensor([0.5]), zero_point=torch.tensor([2])),
    ]


@pytest.mark.parametrize("form", range(7))
def test_row_blocks_decode_to_the_rows_of_the_whole_decode(monkeypatch, form):
    import torch

    from netpress.encode import tensors

    codes = _all_forms()[form]
    whole = codes.decode()
    monkeypatch.setattr(tensors, "DECODE_BLOCK", 50)
    blocks = list(tensors.row_blocks(codes))
    assert len(blocks) == (1 if codes.group_size else 10)
    assert torch.equal(torch.cat([b.decode() for _, b in blocks]), whole)
    assert tensors.decodes_to(codes, whole) and tensors.same_decode(codes, codes)
    off = whole.clone()
    off[-1, -1] += 1.0
    assert not tensors.decodes_to(codes, off) and not tensors.decodes_to(codes, whole[:-1])


def test_narrow_decode_keeps_the_coders_width_and_the_values():
    x = _symbols(50_000, k=16)
    data, meta = encode_stream(x, 16, "ans")
    meta = {"section": "s", **meta}
    narrow, wide = decode_stream(data, meta, narrow=True), decode_stream(data, meta)
    assert narrow.dtype == np.int32 and wide.dtype == np.int64 and np.array_equal(narrow, wide)


@pytest.mark.parametrize("dtype,k,coder", [("int16", 256, "ans"), ("int8", 128, "huffman"), ("int8", 16, "auto")])
def test_encode_codes_of_narrow_indices_writes_the_int64_bytes(dtype, k, coder):
    import torch

    from netpress.encode.tensors import Sections, encode_codes
    from netpress.quantize.codes import Codes

    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, k, (300, 40), generator=g)
    idx[idx % 97 == 5] = -1  # a few pruned: the dense symbol k
    out = []
    for ind in (idx.to(getattr(torch, dtype)), idx):
        sections = Sections()
        entry = encode_codes("w", Codes(ind, torch.linspace(-1, 1, k), (k - 1).bit_length()), sections, coder)
        out.append((entry, sections.items))
    assert out[0] == out[1]


def test_save_without_computing_stored_code_weights_writes_the_checked_file(tmp_path, monkeypatch):
    """k-means (trainable codebook) and uniform (frozen) weights skip the decode-and-compare; same file."""
    import torch
    from torch import nn

    from netpress.encode import api
    from netpress.quantize import UniformSpec, quantize_weights, share_weights

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5), nn.Linear(5, 5))
    net[0].weight.data[0, :3] = 0.0
    share_weights(net, 3, names=["0.weight"])
    quantize_weights(net, UniformSpec(bits=4, granularity="channel"), names=["2.weight"])
    assert api._stored(api._quantizer_inputs(net)["0.weight"])
    fast = api.save(net, tmp_path / "fast.netp", coder="ans")
    monkeypatch.setattr(api, "_stored", lambda found: False)
    slow = api.save(net, tmp_path / "slow.netp", coder="ans")
    assert (tmp_path / "fast.netp").read_bytes() == (tmp_path / "slow.netp").read_bytes()
    assert fast["file_bytes"] == slow["file_bytes"]
    frozen = {t["name"]: t.get("frozen") for t in api.read_manifest(tmp_path / "fast.netp")["tensors"]}
    assert frozen["0.weight"] is None and frozen["2.weight"] is True


def test_relative_positions_and_gap_width_in_blocks_equal_one_block(monkeypatch):
    from netpress.encode import positions as P

    rng = np.random.default_rng(7)
    kept = np.flatnonzero(rng.random(5000) < 0.3)
    kept = np.concatenate([kept, [9000, 70000]])  # long jumps: fillers across block edges
    whole = {b: P.relative(kept, b) for b in (1, 3, 8)}
    best = P.best_gap_bits(kept, 5)
    monkeypatch.setattr(P, "BLOCK", 7)
    assert P.best_gap_bits(kept, 5) == best
    for b, ref in whole.items():
        blocked = P.relative(kept, b)
        assert np.array_equal(blocked.entries, ref.entries)
        assert np.array_equal(blocked.streams["gaps"][0], ref.streams["gaps"][0])
    codes = P.relative(kept, 3)
    assert codes.streams["gaps"][0].dtype == np.uint16 and int(codes.streams["gaps"][0].max()) < 8


@pytest.mark.parametrize("coder", ["ans", "huffman", "packed"])
def test_position_costs_from_block_histograms_equal_the_built_candidates(coder, monkeypatch):
    from netpress.encode import positions as P
    from netpress.encode import tensors as T

    rng = np.random.default_rng(3)
    shape, k = (40, 96), 16
    patterns = {"iid 10%": rng.random(shape) < 0.1, "iid 70%": rng.random(shape) < 0.7,
                "rows": np.repeat(rng.random((40, 1)) < 0.5, 96, 1), "runs": np.tile(np.arange(96) < 20, (40, 1))}
    monkeypatch.setattr(P, "BLOCK", 33)  # several blocks per tensor
    for name, keep in patterns.items():
        idx = np.where(keep, rng.integers(0, k, shape), -1).reshape(-1).astype(np.int8)
        kept = np.flatnonzero(idx >= 0)
        built = P.candidates(kept, shape, 4)
        for cand in built:
            counted = T._counted_cost(cand.method, kept, shape, P.best_gap_bits(kept, 4), idx, k, coder)
            assert counted == T._codes_cost(cand, idx, k, coder), (name, cand.method)
        best = T._cheapest_positions(kept, shape, 4, idx, k, coder)
        reference = min(built, key=lambda c: T._codes_cost(c, idx, k, coder))
        assert (best.method, best.params) == (reference.method, reference.params), name
