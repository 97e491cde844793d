"""Where the surviving weights are: relative indices with filler entries (Deep Compression Fig. 2), CSR, a
bitmask, enumerative rows, or dense (every position carries a value). Each method yields integer streams plus the
ordered flat positions that carry a value ("entries").

enum (1.3): per row of the ``[shape[0], rest]`` view, its count ``k`` and the rank of its set of columns among all
``C(cols, k)`` sets (the combinatorial number system), in exactly ``ceil(log2 C(cols, k))`` bits: the size of the
smallest code for "which ``k`` of these ``cols``", which iid coding of a bitmask reaches only when every row has
the same density.

relative(b): entry ``i`` is ``gap_i + 1`` positions after entry ``i-1`` (the first after position -1), with
``gap_i`` in ``[0, 2**b)``. A jump longer than ``2**b`` is bridged by filler entries every ``2**b`` positions;
a filler's value is the "zero" symbol. ``b`` is chosen per tensor to minimise ``entries * (b + value_bits)``.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from netpress.encode.errors import check

METHODS = ("dense", "bitmask", "relative", "csr", "enum")
MAX_GAP_BITS = 16
ENUM_MAX_ELEMENTS = 1 << 20  # enum decodes in Python big integers (~1 us per element): offered up to this size
ENUM_MAX_COLS = 4096


@dataclasses.dataclass
class Positions:
    """An encoded set of positions.

    Attributes:
        method: ``dense``, ``bitmask``, ``relative`` or ``csr``.
        params: ``{'b': bits}`` for relative, ``{'rows': r, 'cols': c}`` for csr, else ``{}``.
        streams: ``{name: (symbols, alphabet)}`` to entropy-code.
        entries: increasing flat positions that carry a value (relative: including fillers).
    """

    method: str
    params: dict
    streams: dict
    entries: np.ndarray


def best_gap_bits(kept: np.ndarray, value_bits: int) -> int:
    """The ``b`` minimising ``entries(b) * (b + value_bits)`` (fixed-width cost, fillers included).

    Args:
        kept: increasing flat positions of the surviving weights.
        value_bits: bits of each entry's value (the index width).

    Returns:
        ``b`` in ``1..16``.
    """
    if len(kept) == 0:
        return 1
    entries = np.zeros(MAX_GAP_BITS + 1, dtype=np.int64)
    for d in _gap_blocks(kept):
        for b in range(1, MAX_GAP_BITS + 1):
            entries[b] += int(np.sum((d + (1 << b) - 1) >> b))
    return min((int(entries[b]) * (b + value_bits), b) for b in range(1, MAX_GAP_BITS + 1))[1]


BLOCK = 1 << 20  # kept positions per block: bounds the temporaries of the gap computations


def _gap_blocks(kept: np.ndarray):
    """``diff([-1, *kept])`` in blocks of :data:`BLOCK` (int64)."""
    prev = -1
    for start in range(0, len(kept), BLOCK):
        block = np.asarray(kept[start:start + BLOCK], dtype=np.int64)
        yield np.diff(block, prepend=prev)
        prev = int(block[-1])


def stream_counts(method: str, kept: np.ndarray, shape: tuple[int, ...], gap_bits: int) -> tuple[dict, int]:
    """What :func:`candidates`' ``method`` would produce, as histograms, computed in blocks without building it
    (``gap_bits``: relative's gap width, from :func:`best_gap_bits`).

    Returns:
        ``({stream: (counts, length, alphabet)}, fillers)``: ``fillers`` are relative's extra entries (their
        value is the "zero" symbol); 0 for the other methods. Equal to ``np.bincount`` of the built streams.
    """
    numel = int(np.prod(shape, dtype=np.int64))
    n = len(kept)
    if method == "dense":
        return {}, 0
    if method == "bitmask":
        return {"mask": (np.array([numel - n, n], dtype=np.int64), numel, 2)}, 0
    if method == "csr":
        rows, cols = _matrix(shape)
        per_row = np.zeros(rows, dtype=np.int64)
        col_counts = np.zeros(cols, dtype=np.int64)
        for start in range(0, n, BLOCK):
            r, c = np.divmod(np.asarray(kept[start:start + BLOCK], dtype=np.int64), cols)
            per_row += np.bincount(r, minlength=rows)
            col_counts += np.bincount(c, minlength=cols)
        return {"row_counts": (np.bincount(per_row, minlength=cols + 1), rows, cols + 1),
                "cols": (col_counts, n, cols)}, 0
    if method == "enum":  # the ranks are near-random bytes, but their histogram is counted, not assumed
        rows, cols = _matrix(shape)
        built = enumerative(kept, shape).streams
        ranks = built["ranks"][0]
        return {"row_counts": (np.bincount(built["row_counts"][0], minlength=cols + 1), rows, cols + 1),
                "ranks": (np.bincount(ranks, minlength=256), len(ranks), 256)}, 0
    b = gap_bits
    gaps, fillers = np.zeros(1 << b, dtype=np.int64), 0
    for d in _gap_blocks(kept):
        f = (d - 1) >> b
        fillers += int(f.sum())
        gaps += np.bincount(d - 1 - (f << b), minlength=1 << b)
    gaps[(1 << b) - 1] += fillers
    return {"gaps": (gaps, n + fillers, 1 << b)}, fillers


def relative(kept: np.ndarray, b: int) -> Positions:
    """Relative indices of ``kept`` in ``b`` bits, with filler entries where a jump exceeds ``2**b``.

    Args:
        kept: increasing flat positions of the surviving weights.
        b: gap width in bits.

    Returns:
        :class:`Positions` with one stream ``gaps`` (alphabet ``2**b``) and the entries (kept + fillers).

    Example:
        >>> relative(np.array([1, 4, 20]), 3).entries.tolist()   # 12 is a filler
        [1, 4, 12, 20]
    """
    entries, gaps, last = [], [], -1
    for start in range(0, len(kept), BLOCK):  # blocks: each needs only the previous block's last position
        block = np.asarray(kept[start:start + BLOCK], dtype=np.int64)
        e = _with_fillers(block, last, b)
        entries.append(e)
        gaps.append((np.diff(e, prepend=last) - 1).astype(np.uint16 if b <= 16 else np.int64))
        last = int(block[-1])
    entries = np.concatenate(entries) if entries else np.empty(0, dtype=np.int64)
    gaps = np.concatenate(gaps) if gaps else np.empty(0, dtype=np.uint16)
    return Positions("relative", {"b": b}, {"gaps": (gaps, 1 << b)}, entries)


def _with_fillers(kept: np.ndarray, last: int, b: int) -> np.ndarray:
    """``kept`` with a filler every ``2**b`` positions of a longer jump (the jump before the first from ``last``)."""
    prev = np.concatenate(([last], kept[:-1]))
    fillers = (kept - prev - 1) >> b
    owner = np.repeat(np.arange(len(kept)), fillers + 1)
    step = np.arange(len(owner)) - np.repeat(np.cumsum(fillers + 1) - fillers - 1, fillers + 1)
    return np.where(step < fillers[owner], prev[owner] + ((step + 1) << b), kept[owner])


def csr(kept: np.ndarray, shape: tuple[int, ...]) -> Positions:
    """Row counts and column indices of a ``[shape[0], rest]`` view (one row for 0-/1-D tensors)."""
    rows, cols = _matrix(shape)
    r, c = np.divmod(np.asarray(kept, dtype=np.int64), cols)
    counts = np.bincount(r, minlength=rows)
    return Positions("csr", {"rows": rows, "cols": cols}, {"row_counts": (counts, cols + 1), "cols": (c, cols)}, kept)


def _matrix(shape: tuple[int, ...]) -> tuple[int, int]:
    numel = int(np.prod(shape, dtype=np.int64))
    rows = int(shape[0]) if len(shape) >= 2 else 1
    return rows, numel // max(rows, 1)


def rank_widths(counts: np.ndarray, cols: int) -> list[int]:
    """Bits of each row's rank: ``ceil(log2 C(cols, k))`` (0 for ``k`` in ``{0, cols}``)."""
    return [(math.comb(cols, int(k)) - 1).bit_length() for k in counts]


def enumerative(kept: np.ndarray, shape: tuple[int, ...]) -> Positions:
    """Row counts and, per row, the combinatorial-number-system rank of its columns (see the module docstring).

    Example:
        >>> enumerative(np.array([1, 2, 4]), (2, 3)).streams["row_counts"][0].tolist()
        [2, 1]
    """
    rows, cols = _matrix(shape)
    r, c = np.divmod(np.asarray(kept, dtype=np.int64), cols)
    counts = np.bincount(r, minlength=rows)
    bits, start = [], 0
    for k, width in zip(counts.tolist(), rank_widths(counts, cols)):
        members = c[start:start + k].tolist()
        start += k
        if width:
            bits.append(format(_rank(members), f"0{width}b"))
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    ranks = np.frombuffer(int(text, 2).to_bytes(len(text) // 8, "big"), dtype=np.uint8) if text else \
        np.empty(0, dtype=np.uint8)
    return Positions("enum", {"rows": rows, "cols": cols}, {"row_counts": (counts, cols + 1), "ranks": (ranks, 256)},
                     np.asarray(kept, dtype=np.int64))


def _rank(members: list[int]) -> int:
    """``sum C(c_t, t)`` over the increasing columns ``c_1 < c_2 < ...``, walking ``C(c, t)`` up incrementally
    (one small multiply and divide a step, at most ``cols + k`` steps) instead of one ``math.comb`` a member."""
    rank, c, v = 0, 0, 0  # v = C(c, t) once c >= t
    for t, target in enumerate(members, start=1):
        if target < t:  # C(t - 1, t) = 0: the first t columns are all members
            continue
        if c < t:
            c, v = t, 1
        while c < target:
            c += 1
            v = v * c // (c - t)
        rank += v
        v = v * (c - t) // (t + 1)  # C(c, t + 1)
    return rank


def _unrank(rank: int, k: int, cols: int) -> list[int]:
    """The ``k`` increasing columns whose rank is ``rank`` (``0 <= rank < C(cols, k)``): from the largest column
    down, each the largest ``c`` with ``C(c, t) <= rank``, with ``C`` updated incrementally (at most ``cols + k``
    steps of one small multiply and divide)."""
    out, t, c = [], k, cols - 1
    v = math.comb(c, t)
    while t > 0:
        while v > rank:
            v = v * (c - t) // c
            c -= 1
        out.append(c)
        rank -= v
        if t == 1:
            break
        v = v * t // c
        c -= 1
        t -= 1
    return out[::-1]


def _decode_enum(counts: np.ndarray, ranks: np.ndarray, rows: int, cols: int, section: str) -> np.ndarray:
    check(len(counts) == rows and int(counts.max(initial=0)) <= cols, section, "enum row counts do not fit the rows")
    widths = rank_widths(counts, cols)
    check(len(ranks) == (sum(widths) + 7) // 8, section, "enum ranks have the wrong length")
    text = format(int.from_bytes(ranks.astype(np.uint8).tobytes(), "big"), f"0{8 * len(ranks)}b") if len(ranks) else ""
    check(text.count("1", sum(widths)) == 0, section, "enum padding bits are not zero")
    entries, at = [], 0
    for row, (k, width) in enumerate(zip(counts.tolist(), widths)):
        rank = int(text[at:at + width], 2) if width else 0
        at += width
        check(rank < math.comb(cols, k), section, f"enum rank of row {row} is out of range")
        if k:
            entries.append(row * cols + np.array(_unrank(rank, k, cols), dtype=np.int64))
    return np.concatenate(entries) if entries else np.empty(0, dtype=np.int64)


def bitmask(kept: np.ndarray, numel: int) -> Positions:
    """One bit per position."""
    mask = np.zeros(numel, dtype=np.uint8)
    mask[kept] = 1
    return Positions("bitmask", {}, {"mask": (mask, 2)}, np.asarray(kept, dtype=np.int64))


def dense(numel: int) -> Positions:
    """Every position carries a value; no position streams."""
    return Positions("dense", {}, {}, np.arange(numel, dtype=np.int64))


def candidates(kept: np.ndarray, shape: tuple[int, ...], value_bits: int) -> list[Positions]:
    """Every applicable method for these kept positions (relative with its best ``b``)."""
    return [make() for make in candidate_makers(kept, shape, best_gap_bits(kept, value_bits)).values()]


def candidate_makers(kept: np.ndarray, shape: tuple[int, ...], gap_bits: int, dense_entries: bool = True) -> dict:
    """:func:`candidates` as ``{method: function that builds it}``, in the same order, so a caller can build only
    the one it needs (each holds arrays as long as the tensor). ``gap_bits``: relative's gap width.
    ``dense_entries=False``: the dense candidate lists no entries (every position carries a value)."""
    numel = int(np.prod(shape, dtype=np.int64))
    no_entries = Positions("dense", {}, {}, np.empty(0, dtype=np.int64))
    makers = {"dense": (lambda: dense(numel)) if dense_entries else (lambda: no_entries),
              "bitmask": lambda: bitmask(kept, numel), "relative": lambda: relative(kept, gap_bits)}
    if numel and _matrix(shape)[1] >= 1:
        makers["csr"] = lambda: csr(kept, shape)
    if enum_applies(shape):
        makers["enum"] = lambda: enumerative(kept, shape)
    return makers


def enum_applies(shape: tuple[int, ...]) -> bool:
    """``enum`` is offered for tensors of at most 2**20 elements in rows of 2 to 4096 columns."""
    numel = int(np.prod(shape, dtype=np.int64))
    return 0 < numel <= ENUM_MAX_ELEMENTS and 2 <= _matrix(shape)[1] <= ENUM_MAX_COLS


def stream_limits(method: str, params: dict, numel: int) -> dict[str, int]:
    """The most symbols each stream of ``method`` may hold in a tensor of ``numel`` elements."""
    if method == "relative":
        return {"gaps": numel}
    if method == "bitmask":
        return {"mask": numel}
    if method == "csr":
        return {"row_counts": int(params["rows"]), "cols": numel}
    if method == "enum":
        return {"row_counts": int(params["rows"]), "ranks": (numel + 7) // 8}
    return {}


def stream_alphabets(method: str, params: dict) -> dict[str, int]:
    """The alphabet each stream of ``method`` has (section 3 of ``docs/format.md``); params already checked."""
    if method == "relative":
        return {"gaps": 1 << int(params["b"])}
    if method == "bitmask":
        return {"mask": 2}
    if method == "csr":
        return {"row_counts": int(params["cols"]) + 1, "cols": int(params["cols"])}
    if method == "enum":
        return {"row_counts": int(params["cols"]) + 1, "ranks": 256}
    return {}


def check_params(method: str, params: dict, shape: tuple[int, ...], section: str) -> None:
    """Validate a manifest's position method and parameters against the tensor shape."""
    check(method in METHODS, section, f"unknown position method {method!r}")
    if method == "relative":
        b = params.get("b")
        check(isinstance(b, int) and 1 <= b <= MAX_GAP_BITS, section, f"bad gap width {b!r}")
    if method in ("csr", "enum"):
        check(params == dict(zip(("rows", "cols"), _matrix(shape))), section,
              f"{method} dimensions do not fit the shape")
    if method == "enum":
        check(enum_applies(shape), section, "enum positions need at most 2**20 elements in rows of 2-4096 columns")


def decode(method: str, params: dict, streams: dict[str, np.ndarray], shape: tuple[int, ...], section: str) -> np.ndarray:
    """Rebuild the increasing flat entry positions; raises :class:`NetpressFormatError` if they do not fit."""
    numel = int(np.prod(shape, dtype=np.int64))
    if method == "dense":
        return np.arange(numel, dtype=np.int64)
    if method == "bitmask":
        check(len(streams["mask"]) == numel, section, "bitmask length differs from the tensor size")
        return np.flatnonzero(streams["mask"])
    if method == "relative":
        entries = np.cumsum(streams["gaps"] + 1) - 1
    elif method == "enum":
        entries = _decode_enum(streams["row_counts"], streams["ranks"], params["rows"], params["cols"], section)
    else:
        counts, cols = streams["row_counts"], streams["cols"]
        check(len(counts) == params["rows"] and int(counts.sum()) == len(cols), section, "CSR row counts do not add up")
        entries = np.repeat(np.arange(params["rows"], dtype=np.int64), counts) * params["cols"] + cols
    check(len(entries) == 0 or (int(entries[-1]) < numel and bool(np.all(np.diff(entries) > 0))), section,
          "positions fall outside the tensor or repeat")
    return entries
