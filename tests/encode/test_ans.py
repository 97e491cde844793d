import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from netpress.encode import ans
from netpress.encode.errors import NetpressFormatError
from netpress.encode.streams import decode_stream, encode_stream, entropy


@pytest.mark.parametrize("alpha", [0.05, 0.5, 5.0])
def test_payload_within_one_percent_of_entropy(alpha):
    rng = np.random.default_rng(4)
    k = 33
    x = rng.choice(k, size=100_000, p=rng.dirichlet(np.full(k, alpha)))
    data, params = ans.encode(x, k)
    payload_bits = 8 * (len(data) - params["table_bytes"])
    h = entropy(x, k) * len(x)
    assert h <= payload_bits <= 1.01 * h + 64
    assert np.array_equal(ans.decode(data, len(x), k, params), x)


def test_ans_beats_huffman_when_one_symbol_dominates():
    x = (np.random.default_rng(5).random(50_000) < 0.03).astype(np.int64)  # entropy ~0.19 bit, Huffman needs 1
    h_data, h_meta = encode_stream(x, 2, "huffman")
    a_data, a_meta = encode_stream(x, 2, "ans")
    assert a_meta["coding"] == "ans" and len(a_data) < 0.25 * len(h_data)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 2000), k=st.integers(1, 200), seed=st.integers(0, 99))
def test_roundtrip_is_exact(n, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 0.3)))
    data, params = ans.encode(x, k)
    assert np.array_equal(ans.decode(data, n, k, params), x)


def test_varints_roundtrip():
    values = np.array([0, 1, 127, 128, 300, 2 ** 40])
    got, used = ans.read_varints(np.frombuffer(ans.varints(values), np.uint8), len(values), "t")
    assert got.tolist() == values.tolist() and used == len(ans.varints(values))


def test_corrupt_ans_raises_typed_error():
    x = np.random.default_rng(6).integers(0, 5, size=3000)
    data, params = ans.encode(x, 5)
    with pytest.raises(NetpressFormatError, match="histogram"):
        ans.decode(data, len(x) + 1, 5, params)
    with pytest.raises(NetpressFormatError):
        ans.decode(data[:-4], len(x), 5, params)
    with pytest.raises(NetpressFormatError):
        ans.decode(data[:-1], len(x), 5, params)
    with pytest.raises(NetpressFormatError):
        ans.decode(data, len(x), 5, {"table_bytes": 10 ** 9})


def test_stream_coder_choice_and_packed_fallback():
    x = np.arange(64) % 16  # uniform: packed 4 bits is already optimal
    data, meta = encode_stream(x, 16, "auto")
    assert meta["coding"] == "packed" and len(data) == 32
    assert np.array_equal(decode_stream(data, meta), x)
    with pytest.raises(NetpressFormatError, match="at most"):
        decode_stream(data, meta, "s", max_count=10)


@pytest.mark.parametrize("extra", [b"\x78\x56\x34\x12", b"\x01\x00\x00\x00", b"\xff\xff\xff\xff" * 3])
def test_words_below_the_stream_are_leftover_data(extra):
    """Words slipped under the ANS stack decode to the very same symbols: only the leftover check sees them."""
    x = np.random.default_rng(7).integers(0, 5, size=3000)
    data, params = ans.encode(x, 5)
    t = params["table_bytes"]
    with pytest.raises(NetpressFormatError, match="leftover"):
        ans.decode(data[:t] + extra + data[t:], len(x), 5, params)
    assert np.array_equal(ans.decode(data, len(x), 5, params), x)


def test_histogram_total_is_checked_before_decoding(monkeypatch):
    x = np.random.default_rng(8).integers(0, 5, size=3000)
    data, params = ans.encode(x, 5)
    monkeypatch.setattr(ans, "_model", lambda counts: pytest.fail("decoding started"))
    with pytest.raises(NetpressFormatError, match="histogram sums to 3000, stream has 3001 symbols"):
        ans.decode(data, len(x) + 1, 5, params)


@pytest.mark.parametrize("alphabet", [1, 3])
def test_a_stream_with_nothing_to_code_has_no_payload(alphabet):
    x = np.zeros(0 if alphabet == 3 else 50, dtype=np.int64)
    data, params = ans.encode(x, alphabet)
    assert len(data) == params["table_bytes"]
    assert np.array_equal(ans.decode(data, len(x), alphabet, params), x)
    with pytest.raises(NetpressFormatError, match="no payload"):
        ans.decode(data + b"\0\0\0\0", len(x), alphabet, params)
