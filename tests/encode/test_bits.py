"""Fixed-width bit packing: round trip against numpy's bit order and exact-length checks on unpacking."""
import numpy as np
import pytest

from netpress.encode import bits
from netpress.encode.errors import NetpressFormatError


@pytest.mark.parametrize("width", [1, 3, 7, 8, 13, 32])
def test_pack_unpack_roundtrip_matches_numpy_bit_order(width):
    rng = np.random.default_rng(width)
    values = rng.integers(0, 1 << width, size=101, dtype=np.int64)
    data = bits.pack(values, width)
    assert len(data) == (101 * width + 7) // 8
    expected = np.unpackbits(values.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1)[:, 64 - width:]
    assert np.array_equal(np.unpackbits(np.frombuffer(data, np.uint8))[:101 * width], expected.reshape(-1))
    assert np.array_equal(bits.unpack(data, 101, width), values)


@pytest.mark.parametrize("delta", [-1, 1])
def test_unpack_refuses_data_of_the_wrong_length(delta):
    values = np.arange(10)
    data = bits.pack(values, 4)  # 5 bytes
    bad = data[:delta] if delta < 0 else data + b"\0" * delta
    with pytest.raises(NetpressFormatError, match=f"{len(bad)} bytes, expected 5") as info:
        bits.unpack(bad, 10, 4, section="fc.weight/index")
    assert info.value.section == "fc.weight/index"
