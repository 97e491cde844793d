"""Encode one tensor into sections plus a manifest entry, and decode it back (validating everything).

Two kinds:
    ``codes``: a :class:`netpress.quantize.Codes` tensor: positions (dense/bitmask/relative/csr), one value
        stream of codebook indices (symbol ``k`` = zero/pruned where the method has fillers), the float32
        codebook. Decoding goes through :func:`netpress.quantize.decode_indices`.
    ``raw``: any other tensor, its little-endian bytes stored plain or zstd-compressed, optionally sparse
        (positions + the nonzero values).
"""
from __future__ import annotations

import numpy as np
import torch

from netpress.encode import positions as P
from netpress.encode.container import zstd_compress, zstd_decompress
from netpress.encode.errors import check
from netpress.encode.manifest import shape_of
from netpress.encode.streams import decode_stream, encode_stream, estimate
from netpress.quantize.codes import Codes, decode_indices

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
          "uint8": torch.uint8, "bool": torch.bool}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MAX_NDIM = 8
MAX_CODEBOOK = 1 << 20
ZSTD_LEVEL = 19


class Sections:
    """Collects named binary sections while tensors are encoded."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []

    def add(self, name: str, data: bytes) -> str:
        self.items.append((name, bytes(data)))
        return name


# ---------------------------------------------------------------- encoding

def encode_codes(name: str, codes: Codes, sections: Sections, coder: str) -> dict:
    """Encode a quantized tensor; returns its manifest entry (sections are added to ``sections``)."""
    idx = codes.indices.detach().cpu().reshape(-1).numpy().astype(np.int64)
    k = int(codes.codebook.shape[-1])
    if idx.size and (idx.min() < -1 or idx.max() >= k):
        raise ValueError(f"{name}: indices outside [-1, {k})")
    shape = tuple(codes.indices.shape)
    kept = np.flatnonzero(idx >= 0)
    best = min(P.candidates(kept, shape, codes.bits), key=lambda c: _codes_cost(c, idx, k, coder))
    book = codes.codebook.detach().cpu().to(torch.float32).contiguous()
    entry = {"name": name, "kind": "codes", "shape": list(shape), "dtype": "float32", "bits": int(codes.bits),
             "axis": codes.axis, "method": codes.method, "kept": int(len(kept)),
             "codebook": {"shape": list(book.shape), "section": sections.add(f"{name}/codebook", _le_bytes(book))}}
    entry["positions"] = _encode_positions(name, best, sections, coder)
    alphabet, values = _value_symbols(best, idx, k)
    entry["values"] = _add_stream(f"{name}/values", values, alphabet, sections, coder)
    return entry


def _value_symbols(pos: P.Positions, idx: np.ndarray, k: int) -> tuple[int, np.ndarray]:
    values = idx[pos.entries]
    if pos.method in ("dense", "relative"):
        return k + 1, np.where(values < 0, k, values)
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
    dense_bytes, dense_comp = _compress(_le_bytes(flat))
    best, best_size = None, len(dense_bytes)
    if t.is_floating_point() and flat.numel() and float((flat == 0).float().mean()) > 0.5:
        kept = np.flatnonzero((flat != 0).numpy())
        cands = [c for c in P.candidates(kept, tuple(t.shape), 8 * t.element_size()) if c.method != "dense"]
        sized = [(c, _compress(_le_bytes(flat[torch.from_numpy(c.entries)]))) for c in cands]
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


def _compress(data: bytes) -> tuple[bytes, str]:
    packed = zstd_compress(data, ZSTD_LEVEL)
    return (packed, "zstd") if len(packed) < len(data) else (data, "none")


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
    """Rebuild a ``codes`` tensor through :func:`decode_indices` (bit-identical to ``Codes.decode()``)."""
    name, shape = entry["name"], entry_shape(entry)
    codebook, axis = _codebook(entry, shape, reader)
    k = int(codebook.shape[-1])
    entries = _decode_positions(entry, shape, reader)
    method = entry["positions"]["method"]
    alphabet = k + 1 if method in ("dense", "relative") else k
    meta = entry.get("values")
    check(isinstance(meta, dict) and meta.get("alphabet") == alphabet and meta.get("count") == len(entries),
          f"{name}/values", "value stream does not match the positions or codebook")
    values = decode_stream(reader.get(meta.get("section"), f"{name}/values"), meta, f"{name}/values", len(entries))
    values[values == k] = -1
    if method == "dense":
        idx = values
    else:
        idx = np.full(int(np.prod(shape, dtype=np.int64)), -1, dtype=np.int64)
        idx[entries] = values
    _check_kept(entry, int(np.count_nonzero(values >= 0)))
    return decode_indices(torch.from_numpy(idx).reshape(shape), codebook, axis)


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
    data = reader.get(spec.get("section"), where)
    check(len(data) == 4 * int(np.prod(cshape)), where, f"{len(data)} bytes for a float32 codebook of shape {cshape}")
    book = torch.from_numpy(np.frombuffer(data, dtype="<f4").astype(np.float32)).reshape(cshape)
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
    data = _decompress(reader.get(entry.get("section"), name), entry.get("compression"), count * item, name)
    values = _from_le_bytes(data, dtype)
    _check_finite(values, entry, name)
    if not sparse:
        return values.reshape(shape)
    _check_kept(entry, count)
    out = torch.zeros(numel, dtype=dtype)
    out[torch.from_numpy(entries)] = values
    return out.reshape(shape)


def _decompress(data: bytes, compression: object, expected: int, name: str) -> bytes:
    if compression == "none":
        check(len(data) == expected, name, f"{len(data)} bytes, expected {expected}")
        return data
    check(compression == "zstd", name, f"unknown compression {compression!r}")
    return zstd_decompress(data, expected, name)


def _from_le_bytes(data: bytes, dtype: torch.dtype) -> torch.Tensor:
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    if dtype == torch.bool:
        return raw != 0
    return raw.view(dtype).clone()
