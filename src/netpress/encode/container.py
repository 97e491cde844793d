"""The ``.netp`` container: header, JSON manifest, checksummed binary sections. See ``docs/format.md``.

Layout (little-endian)::

    0   8 bytes  magic b"\\x89NETP\\r\\n\\x1a"
    8   u16      format major version (readers reject other majors)
    10  u16      format minor version
    12  u32      flags: bit 0 = the manifest is zstd-compressed; bit 1 = with the frozen manifest dictionary
                 (``manifest_v1.dict``, format 1.3; only with bit 0); other bits must be 0
    16  u32      stored manifest length M
    20  u32      CRC32 of the M stored manifest bytes
    24  M bytes  manifest: UTF-8 JSON (zstd frame if flag bit 0)
    24+M         data area: the sections, at the offsets the manifest gives (relative to 24+M)
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

MAGIC = b"\x89NETP\r\n\x1a"
MAJOR, MINOR = 1, 3  # 1.1: affine codes, float16 codebooks, zstd-planes, activation quantizers; 1.2: context coding;
# 1.3: manifest compressed with a frozen zstd dictionary
FLAG_MANIFEST_DICT = 2
DICT_NAME = "manifest_v1.dict"
DICT_SHA256 = "e78a1518b201b3d8aeecd3ab110b0add8d800ee0ee8bcccdeec297b19f295294"
HEADER = struct.Struct("<8sHHIII")
FLAG_ZSTD_MANIFEST = 1
MAX_MANIFEST = 64 << 20
MANIFEST_BASE, MANIFEST_RATIO = 64 << 10, 64   # decompressed manifest <= base + ratio * stored length (zstd bombs)

from netpress.encode.errors import NetpressFormatError, check  # noqa: E402


def write_file(path: str | os.PathLike, manifest: dict, sections: list[tuple[str, bytes]]) -> int:
    """Write a container atomically (temp file in the same folder, fsync, ``os.replace``).

    Args:
        path: target file.
        manifest: JSON-able dict; ``sections`` and ``data_length`` are filled in here.
        sections: ``(name, bytes)`` in file order.

    Returns:
        The file size in bytes.
    """
    table, offset = [], 0
    for name, data in sections:
        table.append({"name": name, "offset": offset, "length": len(data), "crc32": zlib.crc32(data)})
        offset += len(data)
    manifest = {**manifest, "sections": table, "data_length": offset}
    flags, body = _compress_manifest(json.dumps(manifest, separators=(",", ":"), sort_keys=True,
                                                allow_nan=False).encode())
    header = HEADER.pack(MAGIC, MAJOR, MINOR, flags, len(body), zlib.crc32(body))
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(body)
            for _, data in sections:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(header) + len(body) + offset


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole file; unreadable paths raise :class:`NetpressFormatError` (section ``file``)."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise NetpressFormatError("file", f"cannot read {path}: {exc.strerror or exc}") from None


def parse(blob: bytes, verify: bool = True) -> tuple[dict, dict[str, bytes], int]:
    """Check the header, manifest and section table of a container held in memory.

    Args:
        blob: the file contents.
        verify: also check every section's CRC32 (``inspect`` may skip it).

    Returns:
        ``(manifest, {section name: bytes}, manifest length)``.

    Raises:
        NetpressFormatError: wrong magic, unknown version, truncation, bad checksum, bad section table.
    """
    check(len(blob) >= HEADER.size, "header", f"file is {len(blob)} bytes, shorter than the header")
    magic, major, minor, flags, mlen, mcrc = HEADER.unpack_from(blob)
    check(magic == MAGIC, "header", "not a .netp file (wrong magic bytes)")
    check(major == MAJOR, "header", f"format version {major}.{minor} is not supported (this reader: {MAJOR}.x)")
    check(flags & ~(FLAG_ZSTD_MANIFEST | FLAG_MANIFEST_DICT) == 0, "header", f"unknown flags {flags:#x}")
    check(not flags & FLAG_MANIFEST_DICT or flags & FLAG_ZSTD_MANIFEST, "header",
          "flag bit 1 (manifest dictionary) without bit 0 (zstd manifest)")
    check(mlen <= min(MAX_MANIFEST, len(blob) - HEADER.size), "manifest", f"length {mlen} does not fit the file")
    body = blob[HEADER.size:HEADER.size + mlen]
    check(zlib.crc32(body) == mcrc, "manifest", "checksum mismatch (corrupted)")
    if flags & FLAG_ZSTD_MANIFEST:
        body = zstd_decompress(body, min(MAX_MANIFEST, MANIFEST_BASE + MANIFEST_RATIO * mlen), "manifest", exact=False,
                               dictionary=manifest_dictionary() if flags & FLAG_MANIFEST_DICT else None)
    manifest = parse_json(body)
    start = HEADER.size + mlen
    length = manifest.get("data_length")
    check(isinstance(length, int) and start + length == len(blob), "data",
          f"file has {len(blob) - start} data bytes, manifest says {length} (truncated or padded)")
    return manifest, _sections(manifest, blob, start, verify), mlen


def parse_json(body: bytes) -> dict:
    """The manifest object: strict UTF-8 JSON, finite numbers only, no lone surrogates in any string.

    Raises:
        NetpressFormatError: (section ``manifest``) anything else.
    """
    try:
        manifest = json.loads(body.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
        json.dumps(manifest, ensure_ascii=False).encode("utf-8")  # lone surrogates ("\\ud800") cannot encode
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise NetpressFormatError("manifest", f"not valid JSON ({_one_line(exc)})") from None
    check(isinstance(manifest, dict), "manifest", "not a JSON object")
    return manifest


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _sections(manifest: dict, blob: bytes, start: int, verify: bool) -> dict[str, bytes]:
    table = manifest.get("sections")
    check(isinstance(table, list), "manifest", "missing section table")
    out: dict[str, bytes] = {}
    end = len(blob) - start
    for item in table:
        check(isinstance(item, dict), "manifest", "bad section table entry")
        name, off, n, crc = (item.get(k) for k in ("name", "offset", "length", "crc32"))
        where = str(name)
        check(isinstance(name, str) and name not in out, "manifest", f"bad or duplicate section name {name!r}")
        check(all(isinstance(v, int) and v >= 0 for v in (off, n, crc)), where, "bad offset, length or checksum")
        check(off + n <= end, where, f"section [{off}, {off + n}) runs past the end of the data ({end} bytes)")
        data = blob[start + off:start + off + n]
        check(not verify or zlib.crc32(data) == crc, where, "checksum mismatch (corrupted)")
        out[name] = data
    return out


def _compress_manifest(text: bytes) -> tuple[int, bytes]:
    """``(flags, stored manifest)``: the smaller zstd frame, with or without the manifest dictionary."""
    plain = zstd_compress(text)
    with_dict = zstd_compress(text, dictionary=manifest_dictionary())
    if len(with_dict) < len(plain):
        return FLAG_ZSTD_MANIFEST | FLAG_MANIFEST_DICT, with_dict
    return FLAG_ZSTD_MANIFEST, plain


_DICTIONARY = []


def manifest_dictionary():
    """The frozen zstd raw-content dictionary of format 1.3 manifests (checked against its SHA-256 once)."""
    if not _DICTIONARY:
        import hashlib
        from importlib import resources

        import zstandard

        data = resources.files("netpress.encode").joinpath(DICT_NAME).read_bytes()
        if hashlib.sha256(data).hexdigest() != DICT_SHA256:
            raise RuntimeError(f"netpress/encode/{DICT_NAME} is not the frozen format-1.3 dictionary (reinstall)")
        _DICTIONARY.append(zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT))
    return _DICTIONARY[0]


def zstd_compress(data: bytes, level: int = 19, dictionary=None) -> bytes:
    """A zstd frame (with its content size) of ``data``, optionally against a ``zstandard`` dictionary."""
    import zstandard

    return zstandard.ZstdCompressor(level=level, dict_data=dictionary).compress(data)


def zstd_decompress(data: bytes, limit: int, section: str, exact: bool = True, dictionary=None) -> bytes:
    """Decompress one zstd frame of at most ``limit`` bytes (exactly ``limit`` if ``exact``), never allocating more.

    Raises:
        NetpressFormatError: not a zstd frame, a declared size over the limit, or a different size.
    """
    import zstandard

    try:
        declared = zstandard.frame_content_size(data)
        check(declared <= limit, section, f"zstd frame declares {declared} bytes, at most {limit} expected")
        out = zstandard.ZstdDecompressor(dict_data=dictionary).decompress(data, max_output_size=limit)
    except zstandard.ZstdError as exc:
        raise NetpressFormatError(section, f"zstd data does not decompress ({exc})") from None
    check(not exact or len(out) == limit, section, f"decompressed to {len(out)} bytes, expected {limit}")
    return out
