"""One integer stream -> one section: fixed-width packing, canonical Huffman, ANS or the context coder, whichever
is smallest.

A stream's manifest entry: ``{"section", "coding", "count", "alphabet", ...coding parameters, "entropy"}``
(``entropy``: empirical bits per symbol, for reports only).
"""
from __future__ import annotations

import numpy as np

from netpress.encode import ans, context, huffman
from netpress.encode.bits import as_symbols, histogram, pack, unpack, width_for
from netpress.encode.errors import NetpressFormatError, check

CODERS = ("huffman", "ans", "auto", "packed", "context")  # packed: fixed-length indices, no entropy coding
CANDIDATES = {"huffman": ("packed", "huffman"), "ans": ("packed", "ans"),
              "auto": ("packed", "huffman", "ans", "context"), "packed": ("packed",),
              "context": ("packed", "ans", "context")}  # context: kept only where it beats ANS
TRY_ALL = ("auto", "context")  # coders whose entropy-coded candidates are all encoded, the smallest kept
ENCODERS = {"huffman": huffman.encode, "ans": ans.encode, "context": context.encode}


def entropy(symbols: np.ndarray, alphabet: int) -> float:
    """Empirical entropy in bits per symbol (0 for an empty stream)."""
    counts = histogram(as_symbols(symbols), alphabet)
    n = counts.sum()
    p = counts[counts > 0] / max(n, 1)
    return float(-(p * np.log2(p)).sum()) if n else 0.0


def estimate(symbols: np.ndarray, alphabet: int, coder: str) -> tuple[str, int]:
    """The coding ``coder`` would pick for this stream and its approximate size in bytes."""
    sizes = _sizes(histogram(as_symbols(symbols), alphabet), len(symbols), alphabet, coder)
    if "context" in CANDIDATES[coder] and _applicable("context", alphabet):
        sizes["context"] = context.estimated_bytes(symbols, alphabet)
    best = min(sizes, key=lambda k: (sizes[k], k != "packed"))
    return best, sizes[best]


def needs_sequence(coder: str) -> bool:
    """Whether ``coder``'s size estimates need the symbols in order (else a histogram suffices)."""
    return "context" in CANDIDATES[coder]


def estimate_counts(counts: np.ndarray, n: int, alphabet: int, coder: str) -> tuple[str, int]:
    """:func:`estimate` from the stream's histogram ``counts`` and length ``n`` (``coder`` must not
    :func:`needs_sequence`)."""
    if needs_sequence(coder):
        raise ValueError(f"coder {coder!r} estimates from the symbol sequence, not a histogram")
    sizes = _sizes(np.asarray(counts, dtype=np.int64), n, alphabet, coder)
    best = min(sizes, key=lambda k: (sizes[k], k != "packed"))
    return best, sizes[best]


def _sizes(counts: np.ndarray, n: int, alphabet: int, coder: str) -> dict[str, int]:
    sizes = {"packed": (n * width_for(alphabet - 1) + 7) // 8}
    if "huffman" in CANDIDATES[coder] and alphabet <= huffman.MAX_ALPHABET:
        lengths = huffman.code_lengths(counts)
        table = (alphabet + 1) // 2 if lengths.max(initial=0) <= 15 else alphabet
        chunks = -(-n // huffman.pick_chunk(n))
        sizes["huffman"] = table + chunks + (huffman.encoded_bits(counts, lengths) + 7) // 8
    if "ans" in CANDIDATES[coder] and alphabet <= 1 << 20:
        sizes["ans"] = ans.estimated_bytes(counts)
    return sizes


def encode_stream(symbols: np.ndarray, alphabet: int, coder: str = "huffman") -> tuple[bytes, dict]:
    """Encode one stream with the smallest coding allowed by ``coder``.

    Args:
        symbols: integers in ``[0, alphabet)``.
        alphabet: alphabet size (>= 1).
        coder: ``'huffman'`` (packed or Huffman), ``'ans'`` (packed or ANS), ``'auto'`` (any), ``'packed'``,
            ``'context'`` (packed, ANS or the context coder: the context coder only where it is smaller).

    Returns:
        ``(section bytes, manifest entry without 'section')``.

    Example:
        >>> data, meta = encode_stream(np.array([3, 3, 3, 0]), 4)
        >>> decode_stream(data, meta).tolist()
        [3, 3, 3, 0]
    """
    symbols = as_symbols(symbols)
    coding, _ = estimate(symbols, alphabet, coder)
    meta = {"count": int(len(symbols)), "alphabet": int(alphabet), "entropy": round(entropy(symbols, alphabet), 6)}
    if coding == "packed":
        return pack(symbols, width_for(alphabet - 1)), {"coding": "packed", **meta, "width": width_for(alphabet - 1)}
    # 'auto' / 'context': the estimates are close calls, so encode every candidate and keep the smallest
    tried = [coding] if coder not in TRY_ALL else \
        [c for c in CANDIDATES[coder] if c != "packed" and _applicable(c, alphabet)]
    options = [(ENCODERS[c](symbols, alphabet), c) for c in tried]
    (data, params), coding = min(options, key=lambda o: len(o[0][0]))
    packed_len = (len(symbols) * width_for(alphabet - 1) + 7) // 8
    if packed_len <= len(data):
        return pack(symbols, width_for(alphabet - 1)), {"coding": "packed", **meta, "width": width_for(alphabet - 1)}
    return data, {"coding": coding, **meta, **params}


def _applicable(coding: str, alphabet: int) -> bool:
    return alphabet <= {"huffman": huffman.MAX_ALPHABET, "context": context.MAX_ALPHABET}.get(coding, 1 << 20)


def decode_stream(data: bytes, meta: dict, section: str = "stream", max_count: int | None = None,
                  narrow: bool = False) -> np.ndarray:
    """Decode a stream; symbols are checked to lie in ``[0, alphabet)``.

    Args:
        data: the section bytes.
        meta: the stream's manifest entry.
        section: name used in errors.
        max_count: the most symbols this stream may hold (checked before decoding).
        narrow: return the coder's own integer width (e.g. int32 from ANS) instead of int64.

    Raises:
        NetpressFormatError: any inconsistency.
    """
    coding, count, alphabet = meta.get("coding"), meta.get("count"), meta.get("alphabet")
    check(isinstance(count, int) and count >= 0, section, f"bad symbol count {count!r}")
    check(max_count is None or count <= max_count, section, f"{count} symbols, at most {max_count} fit the tensor")
    check(isinstance(alphabet, int) and 1 <= alphabet <= 1 << 40, section, f"bad alphabet size {alphabet!r}")
    if coding == "packed":
        width = meta.get("width")
        check(width == width_for(alphabet - 1), section, f"bad packed width {width!r}")
        out = unpack(data, count, width, section)
    elif coding == "huffman":
        out = huffman.decode(data, count, alphabet, meta, section)
    elif coding == "ans":
        out = ans.decode(data, count, alphabet, meta, section)
    elif coding == "context":
        out = context.decode(data, count, alphabet, meta, section)
    else:
        raise NetpressFormatError(section, f"unknown coding {coding!r}")
    check(count == 0 or int(out.max()) < alphabet, section, "symbol outside the alphabet")
    return out if narrow else out.astype(np.int64, copy=False)
