"""Fixed-width bit packing (MSB first), vectorised with numpy."""
from __future__ import annotations

import numpy as np

from netpress.encode.errors import check


def pack(values: np.ndarray, width: int) -> bytes:
    """Pack non-negative integers into ``width`` bits each, most significant bit first, zero-padded to a byte.

    Args:
        values: integers in ``[0, 2**width)``.
        width: bits per value (0..32); width 0 stores nothing.

    Returns:
        ``ceil(len(values) * width / 8)`` bytes.

    Example:
        >>> pack(np.array([1, 2, 3]), 2)
        b'l'
    """
    values = np.asarray(values)
    if width == 0 or values.size == 0:
        return b""
    # blocks of a multiple of 8 values end on a byte boundary, so their packed bytes simply concatenate
    return b"".join(_pack_block(values[a:a + BLOCK], width) for a in range(0, values.size, BLOCK))


BLOCK = 1 << 18  # values per pass (bounded memory: the bit matrix is 32 bytes per value)


def _pack_block(values: np.ndarray, width: int) -> bytes:
    as_bytes = values.astype(">u4").view(np.uint8).reshape(-1, 4)
    bits = np.unpackbits(as_bytes, axis=1)[:, 32 - width:]
    return np.packbits(bits.reshape(-1)).tobytes()


def unpack(data: bytes | np.ndarray, count: int, width: int, section: str = "stream") -> np.ndarray:
    """Inverse of :func:`pack`: ``count`` values of ``width`` bits as int64.

    Raises:
        NetpressFormatError: ``data`` is not exactly ``ceil(count * width / 8)`` bytes.
    """
    need = (count * width + 7) // 8
    check(len(data) == need, section, f"packed data has {len(data)} bytes, expected {need}")
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * width).reshape(count, width)
    full = np.zeros((count, 32), dtype=np.uint8)
    full[:, 32 - width:] = bits
    return np.packbits(full, axis=1).view(">u4").reshape(-1).astype(np.int64)


def width_for(max_value: int) -> int:
    """Bits needed to store integers in ``[0, max_value]``."""
    return int(max_value).bit_length()
