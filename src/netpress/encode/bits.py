"""Fixed-width bit packing (MSB first), vectorised with numpy; stream helpers with bounded temporaries."""
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


HIST_BLOCK = 1 << 20  # symbols counted per pass (np.bincount widens its input to int64)


def histogram(symbols: np.ndarray, alphabet: int) -> np.ndarray:
    """``np.bincount(symbols, minlength=alphabet)`` (int64) counted ``HIST_BLOCK`` symbols at a time, so a narrow
    symbol array is never widened whole.

    Example:
        >>> histogram(np.array([3, 3, 0], np.int8), 4).tolist()
        [1, 0, 0, 2]
    """
    symbols = np.asarray(symbols)
    counts = np.zeros(alphabet, dtype=np.int64)
    for a in range(0, symbols.size, HIST_BLOCK):
        part = np.bincount(symbols[a:a + HIST_BLOCK], minlength=alphabet)
        if len(part) > len(counts):
            counts = np.concatenate([counts, np.zeros(len(part) - len(counts), dtype=np.int64)])
        counts[:len(part)] += part
    return counts


def as_symbols(symbols) -> np.ndarray:
    """An integer 1-D array as is (any integer width: no widened copy); anything else as int64."""
    arr = np.asarray(symbols)
    return arr if arr.dtype.kind in "iu" else arr.astype(np.int64)
