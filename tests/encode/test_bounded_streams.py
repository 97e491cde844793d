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
