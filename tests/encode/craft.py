"""Build crafted (not damaged) ``.netp`` files in tests: a manifest and sections re-sealed with valid CRCs."""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from netpress.encode import container


def split(blob: bytes) -> tuple[dict, dict[str, bytes]]:
    """``(manifest without the section table, {section name: bytes})`` of a valid file."""
    manifest, sections, _ = container.parse(blob)
    manifest = {k: v for k, v in manifest.items() if k not in ("sections", "data_length")}
    return manifest, dict(sections)


def seal(manifest: dict, sections: dict[str, bytes], compress: bool = True) -> bytes:
    """A file holding ``sections`` back to back with a correct table, data length and CRCs."""
    table, offset = [], 0
    for name, data in sections.items():
        table.append({"name": name, "offset": offset, "length": len(data), "crc32": zlib.crc32(data)})
        offset += len(data)
    body = json.dumps({**manifest, "sections": table, "data_length": offset}).encode()
    return seal_body(body, b"".join(sections.values()), compress)


def seal_body(body: bytes, data: bytes, compress: bool = True) -> bytes:
    """Header + (optionally zstd-compressed) manifest bytes + data, with the manifest CRC computed."""
    body = container.zstd_compress(body) if compress else body
    head = container.HEADER.pack(container.MAGIC, container.MAJOR, 0, int(compress), len(body), zlib.crc32(body))
    return head + body + data


def edit(blob: bytes, fn) -> bytes:
    """Apply ``fn(manifest, sections)`` (in place) to a valid file and re-seal it."""
    manifest, sections = split(blob)
    fn(manifest, sections)
    return seal(manifest, sections)


def tensor(manifest: dict, name: str) -> dict:
    return next(t for t in manifest["tensors"] if t["name"] == name)


def huffman_stream(section: str, count: int, chunk: int, lengths: list[int], bits: str) -> tuple[dict, bytes]:
    """A one-chunk Huffman stream entry and its section bytes: byte table of ``lengths``, then ``bits`` (a 0/1
    string) padded to a byte."""
    padded = bits + "0" * (-len(bits) % 8)
    stream = bytes(int(padded[i:i + 8], 2) for i in range(0, len(padded), 8))
    data = np.asarray(lengths, dtype=np.uint8).tobytes() + stream
    meta = {"section": section, "coding": "huffman", "count": count, "alphabet": len(lengths), "chunk": chunk,
            "chunk_base": 0, "chunk_width": 0, "tail_bits": len(bits), "table": "byte", "entropy": 0.0}
    return meta, data


def tiny_codes_file(n: int, chunk: int, shared: bool = False) -> bytes:
    """``n`` one-element codes tensors, each a 1-symbol Huffman value stream with a ``chunk``-symbol chunk."""
    tensors, sections = [], {}
    for i in range(n):
        values = "v" if shared else f"t{i}/values"
        meta, data = huffman_stream(values, count=1, chunk=chunk, lengths=[1, 1], bits="0")
        sections[f"t{i}/codebook"] = struct.pack("<f", float(i))
        sections[values] = data
        tensors.append({"name": f"t{i}", "kind": "codes", "shape": [1], "dtype": "float32", "bits": 1, "axis": None,
                        "method": "kmeans", "kept": 1, "codebook": {"shape": [1], "section": f"t{i}/codebook"},
                        "positions": {"method": "dense", "params": {}, "streams": {}}, "values": meta})
    return seal({"format": "netp", "model": None, "metrics": {}, "tensors": tensors}, sections)
