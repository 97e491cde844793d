"""Asymmetric numeral systems (ANS) coding through ``constriction``, with the symbol histogram as the model.

Section layout (manifest parameters: ``count``, ``alphabet``, ``table_bytes``):
    histogram   ``alphabet`` unsigned LEB128 varints (the count of each symbol; they sum to ``count``)
    payload     the ANS coder's compressed words, uint32 little-endian

Both sides build the model as ``constriction.stream.model.Categorical(counts / count, perfect=False)`` from
the same integers, so the quantized model the decoder uses is exactly the encoder's.
"""
from __future__ import annotations

import numpy as np

from netpress.encode.bits import as_symbols, histogram
from netpress.encode.errors import NetpressFormatError, check

MAX_VARINT_BYTES = 8
ENCODE_BLOCK = 1 << 20  # symbols pushed per call (each block is widened to int32 on its own)


def _model(counts: np.ndarray):
    import constriction

    probs = counts.astype(np.float64) / max(int(counts.sum()), 1)
    return constriction.stream.model.Categorical(probs, perfect=False)


def varints(values: np.ndarray) -> bytes:
    """Unsigned LEB128 encoding of non-negative integers (< 2**56)."""
    out = bytearray()
    for v in np.asarray(values, dtype=np.int64).tolist():
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def read_varints(data: np.ndarray, count: int, section: str) -> tuple[np.ndarray, int]:
    """Decode ``count`` varints from the start of ``data``; returns (values, bytes used). Vectorised."""
    ends = np.flatnonzero(data < 0x80)[:count]
    check(len(ends) == count, section, "histogram is truncated")
    used = int(ends[-1]) + 1 if count else 0
    starts = np.concatenate(([0], ends[:-1] + 1)) if count else ends
    check(bool(np.all(ends - starts < MAX_VARINT_BYTES)), section, "histogram entry too long")
    body = data[:used].astype(np.int64) & 0x7F
    group = np.repeat(np.arange(count), ends - starts + 1)
    shift = 7 * (np.arange(used) - starts[group])
    return _sum_shifted(body, shift, group, count), used


def _sum_shifted(body: np.ndarray, shift: np.ndarray, group: np.ndarray, count: int) -> np.ndarray:
    out = np.zeros(count, dtype=np.int64)
    np.add.at(out, group, body << shift)
    return out


def encode(symbols: np.ndarray, alphabet: int) -> tuple[bytes, dict]:
    """ANS-code a symbol stream.

    Args:
        symbols: integers in ``[0, alphabet)``.
        alphabet: alphabet size.

    Returns:
        ``(section bytes, params)`` with ``params = {'table_bytes': n}``.

    Example:
        >>> data, params = encode(np.array([0, 0, 0, 1]), 2)
        >>> decode(data, 4, 2, params).tolist()
        [0, 0, 0, 1]
    """
    import constriction

    symbols = as_symbols(symbols)
    counts = histogram(symbols, alphabet)
    table = varints(counts)
    if len(symbols) == 0 or alphabet == 1:  # nothing to code: the histogram says it all
        return table, {"table_bytes": len(table)}
    coder, model = constriction.stream.stack.AnsCoder(), _model(counts)
    for a in reversed(range(0, len(symbols), ENCODE_BLOCK)):  # last block first: the stack decodes in order
        coder.encode_reverse(symbols[a:a + ENCODE_BLOCK].astype(np.int32), model)
    payload = coder.get_compressed().astype("<u4").tobytes()
    return table + payload, {"table_bytes": len(table)}


def decode(data: bytes, count: int, alphabet: int, params: dict, section: str = "stream") -> np.ndarray:
    """Decode ``count`` symbols written by :func:`encode` (an integer array, int32 from the coder);
    inconsistencies raise :class:`NetpressFormatError`."""
    import constriction

    table_bytes = params.get("table_bytes")
    check(isinstance(table_bytes, int) and 0 <= table_bytes <= len(data), section, f"bad table size {table_bytes!r}")
    check(isinstance(alphabet, int) and 1 <= alphabet <= 1 << 20, section, f"bad alphabet size {alphabet!r}")
    raw = np.frombuffer(data, dtype=np.uint8)
    counts, used = read_varints(raw[:table_bytes], alphabet, section)
    check(used == table_bytes, section, "histogram length mismatch")
    check(int(counts.sum()) == count, section, f"histogram sums to {int(counts.sum())}, stream has {count} symbols")
    payload = raw[table_bytes:]
    check(len(payload) % 4 == 0, section, "ANS payload is not a whole number of 32-bit words")
    if count == 0 or alphabet == 1:
        check(len(payload) == 0, section, "a stream with one possible symbol has no payload")
        return np.zeros(count, dtype=np.int64)
    try:
        coder = constriction.stream.stack.AnsCoder(payload.view("<u4").astype(np.uint32))
        out = as_symbols(coder.decode(_model(counts), count))  # the library's int32: not widened
        clean = coder.is_empty()
    except Exception as exc:  # the library rejects malformed payloads in its own ways
        raise NetpressFormatError(section, f"ANS payload does not decode ({exc})") from None
    check(clean, section, "ANS payload has leftover data")
    check(bool(np.array_equal(histogram(out, alphabet)[:alphabet], counts)) and int(out.max()) < alphabet,
          section, "decoded symbols do not match the histogram")
    return out


def estimated_bytes(counts: np.ndarray) -> int:
    """Approximate section size: the empirical entropy plus one word, plus the histogram."""
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    nz = counts[counts > 0]
    bits = float(-(nz * np.log2(nz / n)).sum()) if n else 0.0
    return 4 * (int(bits) // 32 + 1) + len(varints(counts))
