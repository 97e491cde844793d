"""Context-adaptive coding: order-1 context model (the previous symbol) with per-context tables, interleaved rANS.

Two passes: the encoder counts symbol pairs, picks which previous symbols earn a context of their own (the rest
share context 0), and stores each context's symbol counts in the section; both sides quantize them to 15-bit
frequencies (:func:`quantize`, integer arithmetic). The decoder never adapts, so every step is an integer table
lookup, vectorised across lanes.

Section layout (manifest parameters: ``count``, ``alphabet``, ``contexts`` = m, ``table_bytes``):
    map        m - 1 unsigned LEB128 varints: the previous symbols that select contexts 1 .. m-1
    tables     m * alphabet varints: each context's symbol counts (all summing to ``count``)
    states     lanes * uint32 little-endian: each lane's final rANS state
    words      uint16 little-endian renormalisation words, in decode order

The stream is cut into ``lanes = ceil(count / STEPS)`` consecutive segments of ``STEPS`` symbols (the last one
shorter). Step ``t`` decodes symbol ``t`` of every lane at once; a symbol's context is the previous symbol of its
lane (decoded at step ``t - 1``), context 0 at a lane's start. Decode work: ``m * 2**15`` for the tables plus
``O(count)``, in at most ``STEPS`` numpy steps.
"""
from __future__ import annotations

import numpy as np

from netpress.encode.ans import read_varints, varints
from netpress.encode.errors import check

PROB_BITS = 15
M = 1 << PROB_BITS
LOW = 1 << 16             # rANS state interval [LOW, 2**32); 16-bit words, at most one per symbol
STEPS = 4096              # symbols per lane (the decode loop's length)
MAX_CONTEXTS = 64
MAX_ALPHABET = 4096


def lanes_for(count: int) -> int:
    """Number of lanes of a stream of ``count`` symbols."""
    return -(-count // STEPS)


# ---------------------------------------------------------------- model choice

def choose_map(symbols: np.ndarray, alphabet: int) -> np.ndarray:
    """The previous symbols that get a context of their own (the rest share context 0).

    A previous symbol ``p`` is kept when the bits its own table saves (``n_p`` times the divergence of
    ``P(x | p)`` from the shared distribution) exceed its table's size; at most ``MAX_CONTEXTS - 1``, best first.
    """
    x = np.asarray(symbols, dtype=np.int64)
    if len(x) < 2 or alphabet < 2:
        return np.empty(0, dtype=np.int64)
    prev, cur = x[:-1], x[1:]
    top = np.argsort(-np.bincount(prev, minlength=alphabet), kind="stable")[:4 * MAX_CONTEXTS]
    rank = np.full(alphabet, len(top), dtype=np.int64)
    rank[top] = np.arange(len(top))
    joint = np.bincount(rank[prev] * alphabet + cur, minlength=(len(top) + 1) * alphabet)
    joint = joint.reshape(len(top) + 1, alphabet)[:-1].astype(np.float64)
    marginal = np.bincount(cur, minlength=alphabet).astype(np.float64)
    n_p = joint.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (joint / n_p[:, None]) / (marginal / marginal.sum())
        gain = np.where(joint > 0, joint * np.log2(ratio), 0.0).sum(1)
    cost = 8 * (alphabet + (joint >= 128).sum(1) + (joint >= 1 << 14).sum(1) + 1)  # a row of count varints, bits
    net = gain - cost
    order = np.argsort(-net, kind="stable")
    keep = order[net[order] > 0][:MAX_CONTEXTS - 1]
    return np.sort(top[keep])


def contexts_of(symbols: np.ndarray, cmap: np.ndarray, alphabet: int) -> np.ndarray:
    """Context id of every symbol: ``j`` when the previous symbol of its lane is ``cmap[j - 1]``, else 0."""
    lut = np.zeros(alphabet, dtype=np.int64)
    lut[cmap] = np.arange(1, len(cmap) + 1)
    ctx = np.zeros(len(symbols), dtype=np.int64)
    ctx[1:] = lut[symbols[:-1]]
    ctx[::STEPS] = 0  # lane starts
    return ctx


def quantize(counts: np.ndarray) -> np.ndarray:
    """Frequencies summing to ``M`` (every used symbol >= 1) from a row of counts; all zeros stay zeros.

    ``f = max(floor(counts * M / n), 1)`` for used symbols; a shortfall goes to the (first) most frequent symbol;
    an excess is taken from the largest frequencies first (stable order), each kept >= 1. Integer-only, so a
    decoder reproduces it exactly.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        return counts.copy()
    f = counts * M // n
    f[(counts > 0) & (f == 0)] = 1
    excess = int(f.sum()) - M
    if excess > 0:
        order = np.argsort(-f, kind="stable")
        room = np.maximum(f[order] - 1, 0)  # unused symbols (0) give nothing
        f[order] -= np.clip(excess - (np.cumsum(room) - room), 0, room)
    else:
        f[int(np.argmax(counts))] -= excess
    return f


# ---------------------------------------------------------------- encoding

def encode(symbols: np.ndarray, alphabet: int, cmap: np.ndarray | None = None) -> tuple[bytes, dict]:
    """Context-code a symbol stream.

    Args:
        symbols: integers in ``[0, alphabet)``; ``alphabet <= MAX_ALPHABET``.
        alphabet: alphabet size.
        cmap: previous symbols with a context of their own (default: :func:`choose_map`).

    Returns:
        ``(section bytes, params)`` with ``params = {'contexts': m, 'table_bytes': n}``.

    Example:
        >>> data, params = encode(np.array([0, 0, 1, 1, 1, 0]), 2)
        >>> decode(data, 6, 2, params).tolist()
        [0, 0, 1, 1, 1, 0]
    """
    x = np.asarray(symbols, dtype=np.int64)
    if len(x) == 0 or alphabet == 1:
        return b"", {"contexts": 1, "table_bytes": 0}
    cmap = choose_map(x, alphabet) if cmap is None else np.asarray(cmap, dtype=np.int64)
    m = len(cmap) + 1
    ctx = contexts_of(x, cmap, alphabet)
    counts = np.bincount(ctx * alphabet + x, minlength=m * alphabet).reshape(m, alphabet)
    freq = np.stack([quantize(row) for row in counts])
    cum = np.cumsum(freq, axis=1) - freq
    table = varints(cmap) + varints(counts.reshape(-1))
    states, words = _rans(x, (ctx * alphabet + x), freq.reshape(-1), cum.reshape(-1))
    data = table + states.astype("<u4").tobytes() + words.astype("<u2").tobytes()
    return data, {"contexts": m, "table_bytes": len(table)}


def _rans(x: np.ndarray, key: np.ndarray, freq: np.ndarray, cum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved rANS over lanes, last step first; returns (final states, words in decode order)."""
    count = len(x)
    lanes = lanes_for(count)
    pad = lanes * STEPS - count
    f = np.concatenate([freq[key], np.ones(pad, np.int64)]).reshape(lanes, STEPS).T.copy()  # step-major rows
    c = np.concatenate([cum[key], np.zeros(pad, np.int64)]).reshape(lanes, STEPS).T.copy()
    last = count - (lanes - 1) * STEPS
    state = np.full(lanes, LOW, dtype=np.int64)
    out = []
    for t in range(min(count, STEPS) - 1, -1, -1):
        n = lanes if t < last else lanes - 1
        s, ft, ct = state[:n], f[t, :n], c[t, :n]
        emit = s >= ft << (32 - PROB_BITS)
        out.append(s[emit] & 0xFFFF)
        s[emit] >>= 16
        state[:n] = ((s // ft) << PROB_BITS) + s % ft + ct
    words = np.concatenate(out[::-1]) if out else np.empty(0, np.int64)
    return state, words


# ---------------------------------------------------------------- decoding

def decode(data: bytes, count: int, alphabet: int, params: dict, section: str = "stream") -> np.ndarray:
    """Decode ``count`` symbols written by :func:`encode`; inconsistencies raise :class:`NetpressFormatError`."""
    m, table_bytes = params.get("contexts"), params.get("table_bytes")
    check(isinstance(alphabet, int) and 1 <= alphabet <= MAX_ALPHABET, section, f"bad alphabet size {alphabet!r}")
    check(isinstance(m, int) and 1 <= m <= min(MAX_CONTEXTS, alphabet + 1), section, f"bad context count {m!r}")
    check(isinstance(table_bytes, int) and 0 <= table_bytes <= len(data), section, f"bad table size {table_bytes!r}")
    if count == 0 or alphabet == 1:
        check(len(data) == 0 and m == 1, section, "a stream with one possible symbol has no data")
        return np.zeros(count, dtype=np.int64)
    raw = np.frombuffer(data, dtype=np.uint8)
    cmap, counts = _tables(raw[:table_bytes], m, alphabet, count, section)
    lanes = lanes_for(count)
    rest = len(raw) - table_bytes - 4 * lanes
    check(rest >= 0 and rest % 2 == 0, section, f"{len(raw) - table_bytes} bytes after the tables do not hold "
          f"{lanes} lane states and whole 16-bit words")
    state = raw[table_bytes:table_bytes + 4 * lanes].view("<u4").astype(np.int64)
    check(bool(np.all(state >= LOW)), section, "rANS state below its interval")
    words = raw[table_bytes + 4 * lanes:].view("<u2").astype(np.int64)
    out = _unrans(state, words, cmap, np.stack([quantize(row) for row in counts]), count, alphabet, section)
    got = np.bincount(contexts_of(out, cmap, alphabet) * alphabet + out, minlength=m * alphabet)
    check(bool(np.array_equal(got, counts.reshape(-1))), section, "decoded symbols do not match the context counts")
    return out


def _tables(raw: np.ndarray, m: int, alphabet: int, count: int, section: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated context map and count tables (``m x alphabet``)."""
    cmap, used = read_varints(raw, m - 1, section)
    check(bool(np.all(cmap < alphabet)) and len(np.unique(cmap)) == m - 1, section,
          "context map names a symbol twice or outside the alphabet")
    check(len(raw) - used >= m * alphabet, section, "context tables are truncated")
    counts, more = read_varints(raw[used:], m * alphabet, section)
    check(used + more == len(raw), section, "context table length mismatch")
    check(bool(np.all(counts <= count)) and int(counts.sum()) == count, section,
          f"context counts do not sum to the stream's {count} symbols")
    counts = counts.reshape(m, alphabet)
    check(int(counts[0].sum()) > 0, section, "context 0 (every lane's start) has no counts")
    return cmap, counts


def _unrans(state: np.ndarray, words: np.ndarray, cmap: np.ndarray, freq: np.ndarray, count: int, alphabet: int,
            section: str) -> np.ndarray:
    m = len(freq)
    slot_sym = np.zeros((m, M), dtype=np.int64)  # symbol of every slot, per context
    for j in np.flatnonzero(freq.sum(1)):
        slot_sym[j] = np.repeat(np.arange(alphabet), freq[j])
    slot_sym = slot_sym.reshape(-1)
    f, c = freq.reshape(-1), (np.cumsum(freq, axis=1) - freq).reshape(-1)
    usable = freq.sum(1) > 0
    lut = np.zeros(alphabet, dtype=np.int64)
    lut[cmap] = np.arange(1, m)
    lanes, last = len(state), count - (len(state) - 1) * STEPS
    out = np.zeros((STEPS, lanes), dtype=np.int64)
    ctx = np.zeros(lanes, dtype=np.int64)
    pos = 0
    for t in range(min(count, STEPS)):
        n = lanes if t < last else lanes - 1
        s, k = state[:n], ctx[:n]
        check(bool(usable[k].all()), section, "a symbol falls in a context without a table")
        slot = s & (M - 1)
        sym = slot_sym[k * M + slot]
        key = k * alphabet + sym
        s = f[key] * (s >> PROB_BITS) + slot - c[key]
        need = s < LOW
        r = int(need.sum())
        check(pos + r <= len(words), section, "rANS words are truncated")
        s[need] = (s[need] << 16) | words[pos:pos + r]
        pos += r
        state[:n], out[t, :n], ctx[:n] = s, sym, lut[sym]
    check(pos == len(words), section, "rANS payload has leftover words")
    check(bool(np.all(state == LOW)), section, "rANS states do not return to their start (corrupt payload)")
    return out.T.reshape(-1)[:count]


# ---------------------------------------------------------------- size estimate

def estimated_bytes(symbols: np.ndarray, alphabet: int) -> int:
    """Approximate section size: conditional entropy under :func:`choose_map`, tables, lane states."""
    x = np.asarray(symbols, dtype=np.int64)
    if len(x) == 0 or alphabet == 1:
        return 0
    cmap = choose_map(x, alphabet)
    m = len(cmap) + 1
    counts = np.bincount(contexts_of(x, cmap, alphabet) * alphabet + x, minlength=m * alphabet).reshape(m, -1)
    n = counts.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        bits = float(np.where(counts > 0, -counts * np.log2(counts / np.maximum(n, 1)), 0.0).sum())
    table = len(varints(cmap)) + len(varints(counts.reshape(-1)))
    return table + 4 * lanes_for(len(x)) + 2 * (int(bits) // 16 + 1)
