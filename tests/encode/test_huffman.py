import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from netpress.encode import huffman as H
from netpress.encode.errors import NetpressFormatError


def _entropy(x, k):
    p = np.bincount(x, minlength=k) / len(x)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def test_canonical_codes_are_prefix_free_and_follow_lengths():
    lengths = H.code_lengths(np.array([40, 30, 10, 10, 5, 5, 0]))
    codes = H.canonical_codes(lengths)
    words = [format(int(c), f"0{int(l)}b") for c, l in zip(codes, lengths) if l]
    assert all(not b.startswith(a) for a in words for b in words if a != b)
    assert lengths[6] == 0 and np.sum(2.0 ** -lengths[lengths > 0].astype(float)) == 1.0


@pytest.mark.parametrize("alpha", [0.05, 0.3, 3.0])
def test_average_length_within_one_bit_of_entropy(alpha):
    rng = np.random.default_rng(1)
    k = 64
    x = rng.choice(k, size=50000, p=rng.dirichlet(np.full(k, alpha)))
    counts = np.bincount(x, minlength=k)
    avg = H.encoded_bits(counts, H.code_lengths(counts)) / len(x)
    h = _entropy(x, k)
    assert h <= avg < h + 1
    data, _ = H.encode(x, k)  # the whole section too, tables and chunk index included
    assert len(data) * 8 / len(x) < h + 1


def test_length_limit_holds_for_skewed_histograms():
    counts = (2 ** np.arange(30)).astype(np.int64)  # Fibonacci-like skew would need 29-bit codes
    lengths = H.code_lengths(counts, max_len=12)
    assert lengths.max() <= 12 and np.sum(2.0 ** -lengths.astype(float)) <= 1.0


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 3000), k=st.integers(1, 300), alpha=st.floats(0.01, 5), seed=st.integers(0, 99))
def test_roundtrip_is_exact(n, k, alpha, seed):
    rng = np.random.default_rng(seed)
    x = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, alpha)))
    data, params = H.encode(x, k)
    assert np.array_equal(H.decode(data, n, k, params), x)


def test_large_stream_uses_many_chunks_and_roundtrips():
    x = np.random.default_rng(2).geometric(0.3, size=300_000).clip(max=40) - 1
    data, params = H.encode(x, 40)
    assert params["chunk"] >= 32 and np.array_equal(H.decode(data, len(x), 40, params), x)


def test_corrupt_streams_raise_typed_error():
    x = np.random.default_rng(3).integers(0, 9, size=5000)
    data, params = H.encode(x, 9)
    with pytest.raises(NetpressFormatError):
        H.decode(data[:-1], len(x), 9, params)
    with pytest.raises(NetpressFormatError, match="chunk size"):
        H.decode(data, len(x), 9, {**params, "chunk": 0})
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x10
    with pytest.raises(NetpressFormatError):
        H.decode(bytes(flipped), len(x), 9, params)
    bad_table = bytes([0xFF] * 5) + data[5:]  # 15-bit codes for every symbol: still Kraft-valid, wrong stream
    with pytest.raises(NetpressFormatError):
        H.decode(bad_table, len(x), 9, params)


@pytest.mark.parametrize("n", [13, 14, 15, 16, 17, 18, 20, 24])
def test_deepest_codes_the_encoder_makes_pass_the_table_bound(n):
    """Fibonacci counts give the deepest Huffman tree for their total, the worst case for the decoder's
    ``2**max_len <= max(4096, 64 * count)`` bound: every such stream still round-trips."""
    fib = [1, 1]
    while len(fib) < n:
        fib.append(fib[-1] + fib[-2])
    symbols = np.repeat(np.arange(n), fib)
    np.random.default_rng(n).shuffle(symbols)
    data, params = H.encode(symbols, n)
    lengths = H.code_lengths(np.bincount(symbols, minlength=n))
    assert int(lengths.max()) == n - 1 if n <= H.MAX_LEN + 1 else int(lengths.max()) <= H.MAX_LEN  # deepest tree
    assert np.array_equal(H.decode(data, len(symbols), n, params), symbols)


def test_code_lengths_violating_kraft_are_refused():
    # three 1-bit codes cannot be prefix-free (Kraft sum 1.5): the table must be rejected, not overflow the LUT
    data = bytes([1, 1, 1]) + bytes([0])  # byte table [1, 1, 1], then a one-bit stream "0"
    params = {"chunk": 1, "chunk_base": 0, "chunk_width": 0, "tail_bits": 1, "table": "byte"}
    with pytest.raises(NetpressFormatError, match="Kraft") as info:
        H.decode(data, 1, 3, params, section="t.weight/values")
    assert info.value.section == "t.weight/values"
    ok = bytes([1, 1, 0]) + bytes([0])  # the same stream with a valid table decodes
    assert H.decode(ok, 1, 3, params).tolist() == [0]
