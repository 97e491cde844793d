"""Encode one tensor into sections plus a manifest entry, and decode it back (validating everything).

Two kinds:
    ``codes``: a :class:`netpress.quantize.Codes` tensor: positions (dense/bitmask/relative/csr), one value
        stream of indices (symbol ``k`` = zero/pruned where the method has fillers), and either the codebook
        (float32, or float16 when asked or lossless) or, for affine codes, a scale (float16 when the decoded
        weights stay bit-identical, else float32) and an int32 zero point per channel / group. Decoding goes
        through :meth:`netpress.quantize.Codes.decode`.
    ``raw``: any other tensor, its little-endian bytes stored plain, zstd-compressed, or byte planes
        zstd-compressed (``zstd-planes``), optionally sparse (positions + the nonzero values). Large tensors are
        probed on a sample first, so incompressible ones skip zstd quickly.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from netpress.encode import positions as P
from netpress.encode.container import zstd_compress, zstd_decompress
from netpress.encode.errors import check
from netpress.encode.manifest import shape_of
from netpress.encode.bits import histogram
from netpress.encode.streams import (decode_stream, encode_stream, estimate, estimate_counts,
                                      needs_sequence)
from netpress.quantize.codes import Codes, decode_affine, decode_indices, slice_count

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
          "uint8": torch.uint8, "bool": torch.bool}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MAX_NDIM = 8
MAX_CODEBOOK = 1 << 20
ZSTD_LEVEL = 19
BIG = 1 << 20             # bytes: above this, probe a sample first and compress with the one form that pays
SMALL = 1 << 16           # bytes: up to this, zstd's slowest level (above, a fast level: float data gains ~nothing)
FAST_LEVEL = 6
PROBE_CHUNK, PROBE_CHUNKS = 1 << 16, 8
WORTH = 0.97              # keep a compressed form only when it is at most this fraction of the plain bytes
BOOK_DTYPES = ("auto", "float32", "float16")
DECODE_BLOCK = 1 << 20    # values decoded per block when codes are compared (bounds the check's temporaries)
DENSE_ABOVE = 0.9         # kept fraction above which sparse position methods cannot pay (skip building them)


class Sections:
    """Collects named binary sections while tensors are encoded."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []

    def add(self, name: str, data: bytes) -> str:
        self.items.append((name, bytes(data)))
        return name


# ---------------------------------------------------------------- encoding

def encode_codes(name: str, codes: Codes, sections: Sections, coder: str, book_dtype: str = "auto") -> dict:
    """Encode a quantized tensor; returns its manifest entry (sections are added to ``sections``).

    ``book_dtype``: ``auto`` (float16 codebook / scales when the decoded tensor stays bit-identical), ``float32``,
    or ``float16`` (always; lossy when the values are not float16-exact).
    """
    idx = _index_array(codes.indices)
    k = codes.levels
    if idx.size and (idx.min() < -1 or idx.max() >= k):
        raise ValueError(f"{name}: indices outside [-1, {k})")
    shape = tuple(codes.indices.shape)
    n_kept = int(np.count_nonzero(idx >= 0))
    if n_kept >= DENSE_ABOVE * idx.size:  # (nearly) nothing pruned: dense positions, no position streams
        best, kept = P.Positions("dense", {}, {}, np.empty(0, dtype=np.int64)), None
    else:
        kept = np.flatnonzero(idx >= 0)
        best = _cheapest_positions(kept, shape, codes.bits, idx, k, coder)
        n_kept = len(kept)
    entry = {"name": name, "kind": "codes", "shape": list(shape), "dtype": "float32", "bits": int(codes.bits),
             "axis": codes.axis, "method": codes.method, "kept": int(n_kept)}
    if codes.affine:
        entry["affine"] = _encode_affine(name, codes, sections, book_dtype, coder)
    else:
        book = codes.codebook.detach().cpu().to(torch.float32).contiguous()
        dtype = _float_dtype(book, lambda half: torch.equal(half, book), book_dtype)
        section = sections.add(f"{name}/codebook", _le_bytes(book.to(dtype)))
        entry["codebook"] = {"shape": list(book.shape), "section": section}
        if dtype == torch.float16:
            entry["codebook"]["dtype"] = "float16"
    entry["positions"] = _encode_positions(name, best, sections, coder)
    alphabet, values = _value_symbols(best, idx, k)
    del idx, kept
    entry["values"] = _add_stream(f"{name}/values", values, alphabet, sections, coder)
    return entry


def _cheapest_positions(kept: np.ndarray, shape: tuple, bits: int, idx: np.ndarray, k: int,
                        coder: str) -> P.Positions:
    """The first position method of least coded size (positions + values). From histograms counted in blocks
    where the coder's estimate needs no more (only the winner is built); else each candidate built in turn."""
    gap_bits = P.best_gap_bits(kept, bits)
    makers = P.candidate_makers(kept, shape, gap_bits, dense_entries=False)
    if needs_sequence(coder):
        best, best_cost = None, None
        for make in makers.values():
            cand = make()
            cost = _codes_cost(cand, idx, k, coder)
            if best is None or cost < best_cost:
                best, best_cost = cand, cost
            del cand
        return best
    costs = {m: _counted_cost(m, kept, shape, gap_bits, idx, k, coder) for m in makers}
    return makers[min(costs, key=costs.get)]()  # the first of least cost, as min() over a list


def _counted_cost(method: str, kept: np.ndarray, shape: tuple, gap_bits: int, idx: np.ndarray, k: int,
                  coder: str) -> int:
    """:func:`_codes_cost` of ``method`` from histograms (equal sizes, nothing as long as the tensor built)."""
    streams, fillers = P.stream_counts(method, kept, shape, gap_bits)
    values = np.zeros(k + 1, dtype=np.int64)  # symbol k: a pruned position (dense) or a filler (relative)
    if method == "dense":
        for start in range(0, idx.size, P.BLOCK):
            block = idx[start:start + P.BLOCK]
            values[:k] += histogram(block[block >= 0], k)
            values[k] += int(np.count_nonzero(block < 0))
        alphabet, n = k + 1, idx.size
    else:
        for start in range(0, len(kept), P.BLOCK):
            values[:k] += histogram(idx[kept[start:start + P.BLOCK]], k)
        values[k] = fillers
        alphabet, n = (k + 1, len(kept) + fillers) if method == "relative" else (k, len(kept))
        values = values[:alphabet]
    cost = estimate_counts(values, n, alphabet, coder)[1]
    return cost + sum(estimate_counts(c, length, a, coder)[1] for c, length, a in streams.values())


def _float_dtype(values: torch.Tensor, same, book_dtype: str) -> torch.dtype:
    """float16 when asked, or (``auto``) when ``same(values as float16)``: the decode does not change."""
    if book_dtype not in BOOK_DTYPES:
        raise ValueError(f"codebook dtype {book_dtype!r}; known: {', '.join(BOOK_DTYPES)}")
    half = values.to(torch.float16).to(torch.float32)
    if not torch.isfinite(half).all() or bool(((half == 0) & (values != 0)).any()):
        return torch.float32  # out of float16's range: float16 would change more than the rounding
    if book_dtype != "auto":
        return torch.float16 if book_dtype == "float16" else torch.float32
    return torch.float16 if same(half) else torch.float32


def _encode_affine(name: str, codes: Codes, sections: Sections, book_dtype: str, coder: str) -> dict:
    scale = codes.scale.detach().cpu().float().reshape(-1).contiguous()
    zp = codes.zero_point.detach().cpu().to(torch.int64).reshape(-1)
    if zp.numel() and (zp.min() < -(1 << 31) or zp.max() >= 1 << 31):
        raise ValueError(f"{name}: zero points outside int32")
    cpu = dataclasses.replace(codes, indices=codes.indices.detach().cpu(), scale=scale, zero_point=zp)

    def same(half: torch.Tensor) -> bool:
        return same_decode(cpu, dataclasses.replace(cpu, scale=half))

    if book_dtype == "float32":
        dtype = torch.float32
    elif book_dtype == "auto" and torch.equal(scale.half().float(), scale):
        dtype = torch.float16  # every scale is float16-exact: the decode cannot change
    else:
        dtype = _float_dtype(scale, same, book_dtype)
    out = {"qmin": int(codes.qmin), "group_size": int(codes.group_size), "slices": int(scale.numel()),
           "scale": {"dtype": DTYPE_NAMES[dtype], "section": sections.add(f"{name}/scale", _le_bytes(scale.to(dtype)))}}
    levels = 1 << codes.bits
    if zp.numel() and codes.qmin <= int(zp.min()) and int(zp.max()) < codes.qmin + levels:
        symbols = (zp - codes.qmin).numpy()  # zero points are integer codes too: one entropy-coded stream
        out["zero_point"] = {"stream": _add_stream(f"{name}/zero_point", symbols, levels, sections, coder)}
    else:
        zp_bytes, zp_comp = _compress(_le_bytes(zp.to(torch.int32)))
        out["zero_point"] = {"dtype": "int32", "compression": zp_comp,
                             "section": sections.add(f"{name}/zero_point", zp_bytes)}
    return out


def _index_array(indices: torch.Tensor) -> np.ndarray:
    """Flat numpy indices in their own integer width (int8 codes stay 1 byte a value: no int64 copy)."""
    idx = indices.detach().cpu().reshape(-1).numpy()
    return idx if idx.dtype.kind == "i" else idx.astype(np.int64)


def row_blocks(codes: Codes):
    """``(rows, Codes of those rows)`` for blocks of about ``DECODE_BLOCK`` values along dim 0, each decoding to
    exactly those rows of ``codes.decode()``; the whole codes at once where slices do not split by rows (groups)."""
    shape = tuple(codes.indices.shape)
    step = max(1, DECODE_BLOCK // max(1, math.prod(shape[1:]))) if shape else 0
    if not shape or codes.group_size or step >= shape[0]:
        yield slice(None), codes
        return
    along = codes.axis is not None and codes.axis % len(shape) == 0  # per-slice values follow the rows

    def cut(t: torch.Tensor | None, rows: slice) -> torch.Tensor | None:
        return t[rows] if along and t is not None else t

    for start in range(0, shape[0], step):
        rows = slice(start, start + step)
        book = cut(codes.codebook, rows) if codes.codebook is not None and codes.codebook.dim() == 2 else codes.codebook
        yield rows, dataclasses.replace(codes, indices=codes.indices[rows], codebook=book,
                                        scale=cut(codes.scale, rows), zero_point=cut(codes.zero_point, rows))


def decodes_to(codes: Codes, tensor: torch.Tensor) -> bool:
    """Whether ``codes.decode()`` equals ``tensor`` exactly, decoded block by block (bounded memory)."""
    if tuple(codes.indices.shape) != tuple(tensor.shape):
        return False
    for rows, block in row_blocks(codes):
        decoded = block.decode()
        if not torch.equal(decoded, tensor[rows].to(decoded.dtype)):
            return False
    return True


def same_decode(a: Codes, b: Codes) -> bool:
    """Whether two codes of one shape (e.g. differing in scale precision) decode to the same tensor, blockwise."""
    return all(torch.equal(x.decode(), y.decode()) for (_, x), (_, y) in zip(row_blocks(a), row_blocks(b)))


def _value_symbols(pos: P.Positions, idx: np.ndarray, k: int) -> tuple[int, np.ndarray]:
    values = idx if pos.method == "dense" else idx[pos.entries]
    if pos.method == "dense" and (not values.size or values.min() >= 0):
        return k + 1, values
    if pos.method in ("dense", "relative"):  # symbol k = pruned, in the indices' own width where k fits it
        if np.iinfo(values.dtype).max < k:
            values = values.astype(np.int16 if k <= np.iinfo(np.int16).max else np.int32)
        return k + 1, np.where(values < 0, values.dtype.type(k), values)
    return k, values


def _codes_cost(pos: P.Positions, idx: np.ndarray, k: int, coder: str) -> int:
    alphabet, values = _value_symbols(pos, idx, k)
    return estimate(values, alphabet, coder)[1] + sum(estimate(s, a, coder)[1] for s, a in pos.streams.values())


def _encode_positions(name: str, pos: P.Positions, sections: Sections, coder: str) -> dict:
    streams = {s: _add_stream(f"{name}/{s}", sym, a, sections, coder) for s, (sym, a) in pos.streams.items()}
    return {"method": pos.method, "params": pos.params, "streams": streams}


def _add_stream(section: str, symbols: np.ndarray, alphabet: int, sections: Sections, coder: str) -> dict:
    data, meta = encode_stream(symbols, alphabet, coder)
    return {"section": sections.add(section, data), **meta}


def encode_raw(name: str, tensor: torch.Tensor, sections: Sections, coder: str) -> dict:
    """Encode an unquantized tensor: plain or zstd bytes, sparse (positions + nonzeros) when that is smaller."""
    t = tensor.detach().cpu().contiguous()
    if t.dtype not in DTYPE_NAMES:
        raise ValueError(f"{name}: dtype {t.dtype} cannot be stored")
    entry = {"name": name, "kind": "raw", "shape": list(t.shape), "dtype": DTYPE_NAMES[t.dtype]}
    flat = t.reshape(-1)
    item = t.element_size()
    dense_bytes, dense_comp = _compress(_le_bytes(flat), item)
    best, best_size = None, len(dense_bytes)
    if t.is_floating_point() and flat.numel() and float((flat == 0).float().mean()) > 0.5:
        kept = np.flatnonzero((flat != 0).numpy())
        cands = [c for c in P.candidates(kept, tuple(t.shape), 8 * t.element_size()) if c.method != "dense"]
        sized = [(c, _compress(_le_bytes(flat[torch.from_numpy(c.entries)]), item)) for c in cands]
        costs = [len(v[0]) + sum(estimate(s, a, coder)[1] for s, a in c.streams.values()) for c, v in sized]
        if min(costs) < best_size:
            best, (dense_bytes, dense_comp) = sized[int(np.argmin(costs))]
    if best is not None:
        entry["positions"] = _encode_positions(name, best, sections, coder)
        entry["kept"] = int(len(best.entries))
    entry["compression"] = dense_comp
    entry["section"] = sections.add(f"{name}/data", dense_bytes)
    return entry


def _le_bytes(t: torch.Tensor) -> bytes:
    """Little-endian bytes of a tensor (any supported dtype, including bfloat16 and bool)."""
    t = t.reshape(-1).contiguous()
    if t.dtype == torch.bool:
        return t.to(torch.uint8).numpy().tobytes()
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _compress(data: bytes, item: int = 1) -> tuple[bytes, str]:
    """The smallest of plain, zstd and (``item`` > 1) zstd of the byte planes; large inputs are probed on a
    sample first and stored plain when neither form pays."""
    forms = ["zstd", "zstd-planes"] if item > 1 else ["zstd"]
    level = ZSTD_LEVEL if len(data) <= SMALL else FAST_LEVEL
    if len(data) > BIG:
        sample = _sample(data, item)
        sizes = {f: len(zstd_compress(_planes(sample, item) if f == "zstd-planes" else sample, FAST_LEVEL))
                 for f in forms}
        best = min(sizes, key=sizes.get)
        if sizes[best] > WORTH * len(sample):
            return data, "none"
        forms = [best]
    out = [(zstd_compress(_planes(data, item) if f == "zstd-planes" else data, level), f) for f in forms]
    packed, form = min(out, key=lambda o: len(o[0]))
    return (packed, form) if len(packed) < WORTH * len(data) or (len(data) <= BIG and len(packed) < len(data)) \
        else (data, "none")


def _sample(data: bytes, item: int) -> bytes:
    """``PROBE_CHUNKS`` evenly spaced chunks of ``data`` (aligned to ``item``) for a quick compressibility probe."""
    chunk = PROBE_CHUNK - PROBE_CHUNK % item
    step = max((len(data) - chunk) // max(PROBE_CHUNKS - 1, 1), 1)
    starts = sorted({min(i * step, len(data) - chunk) // item * item for i in range(PROBE_CHUNKS)})
    return b"".join(data[s:s + chunk] for s in starts)


def _planes(data: bytes, item: int) -> bytes:
    """Byte-plane split: byte 0 of every element, then byte 1, ... (exponent bytes of floats compress well)."""
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, item).T.tobytes()


def _unplanes(data: bytes, item: int) -> bytes:
    return np.frombuffer(data, dtype=np.uint8).reshape(item, -1).T.tobytes()


# ---------------------------------------------------------------- decoding

class Reader:
    """Section lookup for decoding; ``get(name)`` returns the (already checksummed) bytes of a section.

    Each section belongs to exactly one stream or tensor: a second ``get`` of the same name is refused, so the
    decode work stays bounded by the bytes in the file.
    """

    def __init__(self, sections: dict[str, bytes]):
        self.sections = sections
        self.used: set[str] = set()

    def get(self, name: object, where: str) -> bytes:
        check(isinstance(name, str) and name in self.sections, where, f"refers to a missing section {name!r}")
        check(name not in self.used, where, f"section {name!r} is already used by another stream")
        self.used.add(name)  # type: ignore[arg-type]
        return self.sections[name]  # type: ignore[index]


def entry_shape(entry: dict) -> tuple[int, ...]:
    """The validated shape of a manifest tensor entry."""
    return shape_of(entry)


def decode_entry(entry: dict, reader: Reader) -> torch.Tensor:
    """Decode one tensor entry (kind ``codes`` or ``raw``); any inconsistency raises NetpressFormatError."""
    kind = entry.get("kind")
    check(kind in ("codes", "raw"), str(entry.get("name")), f"unknown tensor kind {kind!r}")
    return decode_codes(entry, reader) if kind == "codes" else decode_raw(entry, reader)


def _decode_positions(entry: dict, shape: tuple[int, ...], reader: Reader) -> np.ndarray:
    name = entry["name"]
    spec = entry.get("positions")
    check(isinstance(spec, dict) and isinstance(spec.get("params"), dict) and isinstance(spec.get("streams"), dict),
          name, "bad positions entry")
    method, params = spec.get("method"), spec["params"]
    P.check_params(method, params, shape, f"{name}/positions")
    numel = int(np.prod(shape, dtype=np.int64))
    limits = P.stream_limits(method, params, numel)
    alphabets = P.stream_alphabets(method, params)
    check(set(spec["streams"]) == set(limits), name, f"positions need streams {sorted(limits)}")
    streams = {}
    for s, limit in limits.items():
        meta = spec["streams"][s]
        check(isinstance(meta, dict), f"{name}/{s}", "bad stream entry")
        check(meta.get("alphabet") == alphabets[s], f"{name}/{s}", f"alphabet must be {alphabets[s]} for {method}")
        streams[s] = decode_stream(reader.get(meta.get("section"), f"{name}/{s}"), meta, f"{name}/{s}", limit)
    return P.decode(method, params, streams, shape, f"{name}/positions")


def decode_codes(entry: dict, reader: Reader) -> torch.Tensor:
    """Rebuild a ``codes`` tensor (bit-identical to ``Codes.decode()``): a codebook lookup or the affine decode."""
    name, shape = entry["name"], entry_shape(entry)
    affine = "affine" in entry
    if affine:
        scale, zp, qmin, group_size, axis, k = _affine(entry, shape, reader)
    else:
        codebook, axis = _codebook(entry, shape, reader)
        k = int(codebook.shape[-1])
    entries = _decode_positions(entry, shape, reader)
    method = entry["positions"]["method"]
    alphabet = k + 1 if method in ("dense", "relative") else k
    meta = entry.get("values")
    check(isinstance(meta, dict) and meta.get("alphabet") == alphabet and meta.get("count") == len(entries),
          f"{name}/values", "value stream does not match the positions or codebook")
    values = decode_stream(reader.get(meta.get("section"), f"{name}/values"), meta, f"{name}/values", len(entries),
                           narrow=True)
    values[values == k] = -1
    if method == "dense":
        idx = values
    else:
        idx = np.full(int(np.prod(shape, dtype=np.int64)), -1, dtype=values.dtype)
        idx[entries] = values
    _check_kept(entry, int(np.count_nonzero(values >= 0)))
    indices = torch.from_numpy(idx).reshape(shape)
    if affine:
        return decode_affine(indices, scale, zp, qmin, axis, group_size)
    return decode_indices(indices, codebook, axis)


def _affine(entry: dict, shape: tuple[int, ...], reader: Reader):
    """Validated ``(scale, zero_point, qmin, group_size, axis, levels)`` of an affine ``codes`` entry."""
    name, spec, axis, bits = entry["name"], entry.get("affine"), entry.get("axis"), entry.get("bits")
    where = f"{name}/affine"
    check(isinstance(bits, int) and 1 <= bits <= 16, name, f"bad bit width {bits!r}")
    check(isinstance(spec, dict) and "codebook" not in entry, where, "bad affine entry")
    qmin, group_size, slices = spec.get("qmin"), spec.get("group_size"), spec.get("slices")
    check(isinstance(qmin, int) and -(1 << 16) <= qmin <= 0, where, f"bad qmin {qmin!r}")
    check(axis is None or (isinstance(axis, int) and 0 <= axis < len(shape)), where, f"bad axis {axis!r}")
    check(isinstance(group_size, int) and group_size >= 0 and (group_size == 0 or axis is not None), where,
          f"bad group_size {group_size!r}")
    try:
        want = slice_count(shape, axis, group_size)
    except ValueError as exc:
        check(False, where, str(exc))
    check(slices == want, where, f"{slices!r} slices, the shape has {want}")
    sc, zs = spec.get("scale"), spec.get("zero_point")
    check(isinstance(sc, dict) and sc.get("dtype") in ("float16", "float32"), f"{name}/scale", "bad scale entry")
    check(isinstance(zs, dict) and (zs.get("dtype") == "int32" or isinstance(zs.get("stream"), dict)),
          f"{name}/zero_point", "bad zero point entry")
    sdtype = DTYPES[sc["dtype"]]
    data = reader.get(sc.get("section"), f"{name}/scale")
    check(len(data) == want * torch.empty(0, dtype=sdtype).element_size(), f"{name}/scale",
          f"{len(data)} bytes for {want} {sc['dtype']} scales")
    scale = _from_le_bytes(data, sdtype).float()
    check(bool(torch.isfinite(scale).all()) and bool((scale > 0).all()), f"{name}/scale",
          "scales must be finite and > 0")
    if "stream" in zs:
        meta, where = zs["stream"], f"{name}/zero_point"
        check(meta.get("alphabet") == 1 << bits and meta.get("count") == want, where, "zero point stream does not fit")
        zp = torch.from_numpy(decode_stream(reader.get(meta.get("section"), where), meta, where, want) + qmin)
    else:
        raw = _decompress(reader.get(zs.get("section"), f"{name}/zero_point"), zs.get("compression"), 4 * want,
                          f"{name}/zero_point", 4)
        zp = _from_le_bytes(raw, torch.int32).to(torch.int64)
    return scale, zp, qmin, group_size, axis, 1 << bits


def _check_kept(entry: dict, kept: int) -> None:
    check(entry.get("kept", kept) == kept, entry["name"],
          f"says {entry.get('kept')} kept weights, the streams hold {kept}")


def _check_finite(values: torch.Tensor, entry: dict, where: str) -> None:
    """Non-finite floats only where the writer marked the tensor ``nonfinite`` (the model really had them)."""
    if values.is_floating_point() and not entry.get("nonfinite", False):
        check(bool(torch.isfinite(values).all()), where, "holds NaN or infinite values the writer did not mark")


def _codebook(entry: dict, shape: tuple[int, ...], reader: Reader) -> tuple[torch.Tensor, int | None]:
    name, spec, axis, bits = entry["name"], entry.get("codebook"), entry.get("axis"), entry.get("bits")
    where = f"{name}/codebook"
    check(isinstance(bits, int) and 1 <= bits <= 32, name, f"bad bit width {bits!r}")
    check(isinstance(spec, dict) and isinstance(spec.get("shape"), list), where, "bad codebook entry")
    cshape = spec["shape"]
    check(all(isinstance(d, int) for d in cshape) and len(cshape) in (1, 2), where, f"bad codebook shape {cshape!r}")
    k = cshape[-1]
    check(1 <= k <= min(MAX_CODEBOOK, 1 << bits), where, f"codebook size {k} does not fit {bits} bits")
    if len(cshape) == 2:
        check(isinstance(axis, int) and 0 <= axis < len(shape) and cshape[0] == shape[axis], where,
              "per-channel codebook does not match the channel axis")
    else:
        check(axis is None, where, "a 1-D codebook takes no axis")
    dtype = spec.get("dtype", "float32")
    check(dtype in ("float32", "float16"), where, f"unsupported codebook dtype {dtype!r}")
    item = 4 if dtype == "float32" else 2
    data = reader.get(spec.get("section"), where)
    check(len(data) == item * int(np.prod(cshape)), where,
          f"{len(data)} bytes for a {dtype} codebook of shape {cshape}")
    book = _from_le_bytes(data, DTYPES[dtype]).to(torch.float32).reshape(cshape)
    _check_finite(book, entry, where)
    return book, axis


def decode_raw(entry: dict, reader: Reader) -> torch.Tensor:
    """Rebuild a ``raw`` tensor (plain or zstd bytes, dense or sparse)."""
    name, shape = entry["name"], entry_shape(entry)
    dtype = DTYPES.get(entry.get("dtype"))  # type: ignore[arg-type]
    check(dtype is not None, name, f"unsupported dtype {entry.get('dtype')!r}")
    numel = int(np.prod(shape, dtype=np.int64))
    sparse = "positions" in entry
    check(not sparse or dtype.is_floating_point, name, "only float tensors can be sparse")
    entries = _decode_positions(entry, shape, reader) if sparse else None
    count = len(entries) if sparse else numel
    item = torch.empty(0, dtype=dtype).element_size()
    data = _decompress(reader.get(entry.get("section"), name), entry.get("compression"), count * item, name, item)
    values = _from_le_bytes(data, dtype)
    _check_finite(values, entry, name)
    if not sparse:
        return values.reshape(shape)
    _check_kept(entry, count)
    out = torch.zeros(numel, dtype=dtype)
    out[torch.from_numpy(entries)] = values
    return out.reshape(shape)


def _decompress(data: bytes, compression: object, expected: int, name: str, item: int = 1) -> bytes:
    if compression == "none":
        check(len(data) == expected, name, f"{len(data)} bytes, expected {expected}")
        return data
    check(compression in ("zstd", "zstd-planes"), name, f"unknown compression {compression!r}")
    out = zstd_decompress(data, expected, name)
    return _unplanes(out, item) if compression == "zstd-planes" else out


def _from_le_bytes(data: bytes, dtype: torch.dtype) -> torch.Tensor:
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    if dtype == torch.bool:
        return raw != 0
    return raw.view(dtype).clone()
