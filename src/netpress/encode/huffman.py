"""Canonical Huffman coding with a table-driven, vectorised decoder.

The table stores only code lengths (canonical codes are rebuilt from them). The bitstream is cut into chunks of
``chunk`` symbols whose bit lengths are stored, so the decoder runs all chunks in lock-step: one numpy step
decodes one symbol in every chunk through a lookup table indexed by the next ``max_len`` bits.

Section layout (parameters in the manifest: ``count``, ``alphabet``, ``chunk``, ``chunk_base``, ``chunk_width``,
``tail_bits``, ``table``):
    code lengths   ``alphabet`` entries: 4 bits each (``table='nibble'``) or 1 byte each (``'byte'``), MSB first
    chunk lengths  for all chunks but the last (``ceil(count / chunk) - 1``): bit length minus ``chunk_base``, in
                   ``chunk_width`` bits each, MSB first, padded to a byte; the last chunk has ``tail_bits`` bits
    bitstream      codewords MSB first, padded to a byte with zeros
"""
from __future__ import annotations

import heapq

import numpy as np

from netpress.encode.bits import as_symbols, histogram, pack, unpack, width_for
from netpress.encode.errors import check

MAX_LEN = 16          # longest code the encoder makes (unless the alphabet needs more)
MAX_LEN_LIMIT = 20    # longest code the decoder accepts (its lookup table has 2**max_len entries)
MAX_ALPHABET = 1 << 20
LUT_BASE, LUT_PER_SYMBOL = 1 << 12, 64  # lookup-table entries allowed: max(base, per_symbol * count)


def code_lengths(counts: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Huffman code lengths for a histogram, limited to ``max_len`` bits.

    Args:
        counts: non-negative symbol counts (the alphabet is ``range(len(counts))``).
        max_len: longest allowed code; raised to fit the number of used symbols if needed.

    Returns:
        uint8 lengths; 0 for unused symbols; a lone used symbol gets length 1.

    Example:
        >>> code_lengths(np.array([5, 1, 1, 0])).tolist()
        [1, 2, 2, 0]
    """
    counts = np.asarray(counts, dtype=np.int64)
    used = np.flatnonzero(counts)
    lengths = np.zeros(len(counts), dtype=np.uint8)
    if len(used) == 1:
        lengths[used] = 1
    if len(used) <= 1:
        return lengths
    max_len = max(max_len, int(len(used) - 1).bit_length())
    weights = counts[used]
    while True:
        got = _huffman_lengths(weights)
        if got.max() <= max_len:
            lengths[used] = got
            return lengths
        weights = (weights + 1) // 2  # flatten the histogram until the tree fits


def _huffman_lengths(weights: np.ndarray) -> np.ndarray:
    heap = [(int(w), i, (i,)) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    depth = np.zeros(len(weights), dtype=np.int64)
    tie = len(weights)
    while len(heap) > 1:
        w1, _, a = heapq.heappop(heap)
        w2, _, b = heapq.heappop(heap)
        merged = a + b
        depth[list(merged)] += 1
        heapq.heappush(heap, (w1 + w2, tie, merged))
        tie += 1
    return depth


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical codewords (as integers) for the given lengths: shorter codes first, ties by symbol."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.int64)
    order = np.lexsort((np.arange(len(lengths)), lengths))
    order = order[lengths[order] > 0]
    code, prev = 0, 0
    for sym in order:
        code <<= int(lengths[sym]) - prev
        prev = int(lengths[sym])
        codes[sym] = code
        code += 1
    return codes


def pick_chunk(count: int) -> int:
    """Symbols per chunk: ~8192 chunks for wide numpy steps on big streams, but at least 128 symbols so the chunk
    table (``chunk_width`` bits per chunk, ~7) stays near 1% of the stream."""
    return int(min(1024, max(128, 1 << int(round(np.log2(max(count, 1) / 8192 + 1))))))


def encoded_bits(counts: np.ndarray, lengths: np.ndarray) -> int:
    """Bits of the Huffman bitstream alone (no tables)."""
    return int(np.dot(np.asarray(counts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)))


def encode(symbols: np.ndarray, alphabet: int, lengths: np.ndarray | None = None) -> tuple[bytes, dict]:
    """Huffman-code a symbol stream.

    Args:
        symbols: integers in ``[0, alphabet)``.
        alphabet: alphabet size.
        lengths: code lengths (default: optimal for this stream's histogram).

    Returns:
        ``(section bytes, params)``; ``params`` (``chunk``, ``chunk_width``, ``table``) go into the manifest.

    Example:
        >>> data, params = encode(np.array([0, 0, 1, 2]), 3)
        >>> decode(data, 4, 3, params).tolist()
        [0, 0, 1, 2]
    """
    symbols = as_symbols(symbols)
    if lengths is None:
        lengths = code_lengths(histogram(symbols, alphabet))
    codes = canonical_codes(lengths)
    chunk = pick_chunk(len(symbols))
    chunk_bits = _chunk_bits(symbols, lengths.astype(np.int64), chunk)
    full, tail = chunk_bits[:-1], int(chunk_bits[-1]) if len(chunk_bits) else 0
    base = int(full.min()) if len(full) else 0
    width = width_for(int(full.max(initial=0)) - base)
    table = "nibble" if lengths.max(initial=0) <= 15 else "byte"
    body = _table_bytes(lengths, table) + pack(full - base, width) + _bitstream(symbols, codes, lengths)
    return body, {"chunk": chunk, "chunk_base": base, "chunk_width": width, "tail_bits": tail, "table": table}


BLOCK = 1 << 18  # symbols encoded per numpy pass (a multiple of every chunk size): bounded memory on big streams


def _chunk_bits(symbols: np.ndarray, lengths: np.ndarray, chunk: int) -> np.ndarray:
    """Bit length of each chunk of ``chunk`` symbols."""
    parts = [np.add.reduceat(lengths[symbols[a:a + BLOCK]], np.arange(0, min(BLOCK, len(symbols) - a), chunk))
             for a in range(0, len(symbols), BLOCK)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _table_bytes(lengths: np.ndarray, table: str) -> bytes:
    return pack(lengths, 4) if table == "nibble" else np.asarray(lengths, dtype=np.uint8).tobytes()


def _bitstream(symbols: np.ndarray, codes: np.ndarray, lengths: np.ndarray) -> bytes:
    """Concatenate codewords MSB first, vectorised per block: each code lands in (at most) two big-endian 32-bit
    words."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(np.dot(histogram(symbols, len(lengths)), lengths)) if len(symbols) else 0
    if total == 0:
        return b""
    out = np.zeros((total + 31) // 32 + 1, dtype=np.float64)
    pos = 0
    for a in range(0, len(symbols), BLOCK):
        sym = symbols[a:a + BLOCK]
        lens = lengths[sym]
        starts = pos + np.cumsum(lens) - lens
        pos += int(lens.sum())
        word, offset = starts >> 5, starts & 31
        placed = codes[sym].astype(np.uint64) << (64 - offset - lens).astype(np.uint64)
        w0 = int(word[0])
        hi = np.bincount(word - w0, weights=(placed >> np.uint64(32)).astype(np.float64))
        lo = np.bincount(word + 1 - w0, weights=(placed & np.uint64(0xFFFFFFFF)).astype(np.float64))
        out[w0:w0 + len(hi)] += hi
        out[w0:w0 + len(lo)] += lo
    # codes in one word occupy disjoint bits, so these sums are exact ORs (all < 2**32, exact in float64)
    return out.astype(">u4").tobytes()[:(total + 7) // 8]


def decode(data: bytes, count: int, alphabet: int, params: dict, section: str = "stream") -> np.ndarray:
    """Decode ``count`` symbols; every inconsistency raises :class:`NetpressFormatError` naming ``section``.

    Args:
        data: the section bytes written by :func:`encode`.
        count: number of symbols.
        alphabet: alphabet size.
        params: the manifest's ``chunk``, ``chunk_width`` and ``table``.
        section: name used in errors.

    Returns:
        int64 array of ``count`` symbols.
    """
    chunk, base, width, tail, table = _check_params(params, alphabet, section)
    table_len = (alphabet + 1) // 2 if table == "nibble" else alphabet
    nchunks = -(-count // chunk)
    index_len = (max(nchunks - 1, 0) * width + 7) // 8
    check(len(data) >= table_len + index_len, section, "shorter than its Huffman tables")
    check(count <= 8 * len(data), section, f"{count} symbols cannot fit {len(data)} bytes (1 bit each at least)")
    raw = np.frombuffer(data, dtype=np.uint8)
    lengths = unpack(raw[:table_len], alphabet, 4, section) if table == "nibble" else raw[:table_len].astype(np.int64)
    full = unpack(raw[table_len:table_len + index_len], max(nchunks - 1, 0), width, section) + base
    chunk_bits = np.append(full, tail) if nchunks else full
    stream = raw[table_len + index_len:]
    total = int(chunk_bits.sum())
    check((total + 7) // 8 == len(stream), section, f"bitstream has {len(stream)} bytes, chunk table says {total} bits")
    if count == 0:
        check(tail == 0, section, "an empty stream has no bits")
        return np.zeros(0, dtype=np.int64)
    max_len = _max_len(lengths, count, section)
    symbols = np.full(nchunks, chunk, dtype=np.int64)
    symbols[-1] = count - (nchunks - 1) * chunk
    check(bool(np.all(chunk_bits >= symbols) and np.all(chunk_bits <= symbols * max_len)), section,
          "a chunk's bit length does not fit its symbols")
    lut_sym, lut_len = _lookup_table(lengths, alphabet, max_len, section)
    return _decode_lanes(stream, chunk_bits, count, min(chunk, count), lut_sym, lut_len, max_len, alphabet, section)


def _max_len(lengths: np.ndarray, count: int, section: str) -> int:
    """The longest code; its lookup table (``2**max_len`` entries) must be paid for by the stream's length.

    A Huffman code of depth ``L > 12`` needs over ``2**L / 64`` symbols (Fibonacci-weighted worst case), so the
    bound never rejects a stream :func:`encode` wrote.
    """
    max_len = int(lengths.max(initial=0))
    check(1 <= max_len <= MAX_LEN_LIMIT, section, f"code lengths out of range (max {max_len})")
    check(1 << max_len <= max(LUT_BASE, LUT_PER_SYMBOL * count), section,
          f"a {max_len}-bit code is too long for a stream of {count} symbols")
    return max_len


def _check_params(params: dict, alphabet: int, section: str) -> tuple[int, int, int, int, str]:
    chunk, base, width, tail, table = (params.get(k) for k in ("chunk", "chunk_base", "chunk_width", "tail_bits", "table"))
    check(isinstance(chunk, int) and 1 <= chunk <= 1 << 16, section, f"bad chunk size {chunk!r}")
    check(isinstance(base, int) and 0 <= base <= chunk * MAX_LEN_LIMIT, section, f"bad chunk base {base!r}")
    check(isinstance(width, int) and 0 <= width <= 24, section, f"bad chunk width {width!r}")
    check(isinstance(tail, int) and 0 <= tail <= chunk * MAX_LEN_LIMIT, section, f"bad tail length {tail!r}")
    check(table in ("nibble", "byte"), section, f"bad table kind {table!r}")
    check(isinstance(alphabet, int) and 1 <= alphabet <= MAX_ALPHABET, section, f"bad alphabet size {alphabet!r}")
    return chunk, base, width, tail, table


def _lookup_table(lengths: np.ndarray, alphabet: int, max_len: int, section: str) -> tuple[np.ndarray, np.ndarray]:
    """``2**max_len`` entries: symbol and code length for every ``max_len``-bit window; invalid -> ``alphabet``."""
    used = lengths > 0
    kraft = np.sum(np.ldexp(1.0, -lengths[used].astype(np.int64)))
    check(kraft <= 1.0, section, "code lengths violate the Kraft inequality")
    order = np.lexsort((np.arange(alphabet), lengths))
    order = order[lengths[order] > 0]
    span = np.int64(1) << (max_len - lengths[order].astype(np.int64))
    lut_sym = np.full(1 << max_len, alphabet, dtype=np.int64)
    lut_len = np.ones(1 << max_len, dtype=np.int64)
    filled = int(span.sum())
    lut_sym[:filled] = np.repeat(order, span)
    lut_len[:filled] = np.repeat(lengths[order].astype(np.int64), span)
    return lut_sym, lut_len


def _decode_lanes(stream, chunk_bits, count, rows, lut_sym, lut_len, max_len, alphabet, section) -> np.ndarray:
    """Decode all chunks in lock-step: ``rows`` (``min(chunk, count)``) numpy steps, one symbol per chunk each."""
    nchunks = len(chunk_bits)
    pad = np.zeros(len(stream) + rows * max_len // 8 + 8, dtype=np.uint32)
    pad[:len(stream)] = stream
    words = (pad[:-3] << 24) | (pad[1:-2] << 16) | (pad[2:-1] << 8) | pad[3:]
    lut = ((lut_sym << 5) | lut_len).astype(np.int32)  # one gather per symbol: symbol and code length
    ends = np.cumsum(chunk_bits)
    pos = ends - chunk_bits
    last = count - (nchunks - 1) * rows
    out = np.empty((rows, nchunks), dtype=np.int32)
    drop = np.uint32(32 - max_len)
    last_end = None
    for i in range(rows):
        window = (words[pos >> 3] << (pos & 7).astype(np.uint32)) >> drop
        entry = lut[window]
        np.right_shift(entry, 5, out=out[i])
        pos += entry & 31
        if i == last - 1:
            last_end = int(pos[-1])
    check(np.array_equal(pos[:-1], ends[:-1]) and last_end == int(ends[-1]), section,
          "Huffman bitstream does not match its chunk table")
    result = out.T.astype(np.int64).reshape(-1)[:count]
    check(int(result.max()) < alphabet, section, "invalid Huffman codeword")
    return result
