"""Mutators and the per-case oracle shared by the fuzz test (tests/encode/test_fuzz.py) and bench/fuzz.py.

A case is one mutated file. Byte mutations damage the file as stored (CRCs left alone); section mutations change
one section's bytes and re-seal the CRCs; manifest mutations edit the JSON (types, ranges, aliasing, deletions)
and re-seal. The oracle: a case either raises a typed error (:class:`NetpressError`) or loads, and then every
tensor the mutation could not have touched is bit-identical to the original (byte damage: all of them).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field

import torch

from craft import seal, split
from netpress.encode import load_state
from netpress.errors import NetpressError

VALUES = [0, -1, 1, 2, 3, 7, 8, 16, 255, 1 << 16, 1 << 20, 1 << 31, 1 << 40, 1 << 63, 10 ** 30, -(1 << 31), 0.5,
          1e300, None, True, False, "", "x", "none", "zstd", "huffman", "ans", "packed", "context", "relative", "csr",
          "bitmask", "dense", "\ud800", [], [1], [0, 0], [1, 4096, 4096], {}, {"a": 1}]
KINDS = ("bytes", "section", "manifest")
REINTERPRET = ("dtype", "shape", "axis", "name")  # manifest fields that may legitimately change what loads



@dataclass
class Outcome:
    """What one case did: ``rejected`` (typed error), ``identical``/``changed`` (loaded), ``crash`` (an untyped
    error) or ``corrupt`` (loaded, but a tensor the mutation may not change differs). ``touched``: the tensors
    the mutation may change (a re-sealed section's owner; a tensor whose dtype/shape/axis/name was edited)."""

    kind: str
    result: str
    seconds: float  # CPU time of this process (wall time on a shared machine mostly measures the neighbours)
    error: str = ""
    touched: set = field(default_factory=set)


def mutate_bytes(blob: bytes, rng: random.Random) -> bytes:
    """Bit flips, random bytes, truncation, insertion, deletion or a copied span, at random places."""
    data = bytearray(blob)
    op = rng.randrange(6)
    at = rng.randrange(len(data))
    if op == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif op == 1:
        data[at:at + 4] = rng.randbytes(4)
    elif op == 2:
        del data[at:]
    elif op == 3:
        data[at:at] = rng.randbytes(rng.randint(1, 16))
    elif op == 4:
        del data[at:at + rng.randint(1, 16)]
    else:
        src = rng.randrange(len(data))
        data[at:at + 8] = data[src:src + 8]
    return bytes(data)


def mutate_section(blob: bytes, rng: random.Random) -> tuple[bytes, set]:
    """Change the bytes of one section (flip, truncate, extend, zero, 0xff) and re-seal with valid CRCs."""
    manifest, sections = split(blob)
    name = rng.choice(sorted(sections))
    data = bytearray(sections[name])
    op = rng.randrange(5)
    if op == 0 and data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif op == 1:
        del data[rng.randrange(len(data) + 1):]
    elif op == 2:
        data += rng.randbytes(rng.randint(1, 8))
    elif op == 3:
        data = bytearray(len(data))
    else:
        data = bytearray(b"\xff" * len(data))
    sections[name] = bytes(data)
    return seal(manifest, sections), {_owner(manifest, name)}


def mutate_manifest(blob: bytes, rng: random.Random) -> tuple[bytes, set]:
    """One structured edit of the manifest (a leaf, a deletion, section aliasing, a resize, a duplicated entry)."""
    manifest, sections = split(blob)
    tensors = manifest["tensors"]
    op = rng.randrange(6)
    t = rng.choice(tensors)
    touched = set()
    if op == 0:  # one leaf anywhere in a tensor entry; only a new dtype/shape/axis/name may reinterpret the bytes
        name, path = t["name"], []
        _mutate_leaf(t, rng, path)
        touched = {name} if path[0] in REINTERPRET else set()
    elif op == 1:  # a top-level field (model spec, metrics, ...)
        key = rng.choice(["model", "metrics", "model_class", "recipe", "coder", "format"])
        manifest[key] = _mutate_leaf(manifest.get(key), rng, []) if rng.random() < 0.6 else rng.choice(VALUES)
    elif op == 2:  # delete a key somewhere in a tensor entry
        _delete_key(t, rng)
    elif op == 3:  # point a stream or tensor at another section (aliasing)
        refs = list(_section_refs(manifest))
        rng.choice(refs)[1]["section"] = rng.choice(refs)[1]["section"]
    elif op == 4:  # resize: scale a dimension and the counts with it (an all-zero tensor may validly grow)
        touched = {t["name"]}
        factor = rng.choice([0, 2, 3, 1 << 10, 1 << 20])
        if t.get("shape"):
            t["shape"][rng.randrange(len(t["shape"]))] *= factor
        for _, ref in _section_refs({"tensors": [t]}):
            if "count" in ref and rng.random() < 0.5:
                ref["count"] *= factor
    else:  # duplicate an entry under a new name (a second reader of the same sections)
        tensors.append({**json.loads(json.dumps(t)), "name": t["name"] + ".copy"})
    return seal(manifest, sections), touched


def _mutate_leaf(value, rng: random.Random, path: list):
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        path.append(key)
        value[key] = _mutate_leaf(value[key], rng, path)
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        path.append(i)
        value[i] = _mutate_leaf(value[i], rng, path)
        return value
    if isinstance(value, int) and not isinstance(value, bool) and rng.random() < 0.5:
        return rng.choice([value + 1, value - 1, value * 2, value // 2, -value, value * 1000, value + (1 << 32)])
    return rng.choice(VALUES)


def _delete_key(value, rng: random.Random) -> None:
    while isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        if rng.random() < 0.4 or not isinstance(value[key], dict):
            del value[key]
            return
        value = value[key]


def _section_refs(manifest: dict):
    """``(tensor name, dict with a 'section' key)`` for every section reference."""
    for t in manifest["tensors"]:
        stack = [t]
        while stack:
            d = stack.pop()
            if isinstance(d, dict):
                if isinstance(d.get("section"), str):
                    yield t["name"], d
                stack.extend(v for v in d.values() if isinstance(v, (dict, list)))
            elif isinstance(d, list):
                stack.extend(d)


def _owner(manifest: dict, section: str) -> str:
    return next((name for name, ref in _section_refs(manifest) if ref["section"] == section), "")


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical (NaN-aware): same dtype, shape and bytes."""
    return a.dtype == b.dtype and a.shape == b.shape and a.reshape(-1).contiguous().view(torch.uint8).equal(
        b.reshape(-1).contiguous().view(torch.uint8))


def run_case(path, blob: bytes, original: dict, kind: str, rng: random.Random, load=load_state) -> Outcome:
    """Mutate ``blob`` by ``kind``, write it to ``path``, load it with ``load`` and judge the result."""
    if kind == "bytes":
        mutated, touched = mutate_bytes(blob, rng), set()
    elif kind == "section":
        mutated, touched = mutate_section(blob, rng)
    else:
        mutated, touched = mutate_manifest(blob, rng)
    path.write_bytes(mutated)
    start = time.process_time()
    try:
        state = load(path)
    except NetpressError as exc:
        return Outcome(kind, "rejected", time.process_time() - start, str(exc), touched)
    except Exception as exc:  # noqa: BLE001 - an untyped error is what the fuzzer hunts
        return Outcome(kind, "crash", time.process_time() - start, f"{type(exc).__name__}: {exc}", touched)
    seconds = time.process_time() - start
    untouched = {k: v for k, v in original.items() if k not in touched}
    if any(k not in state or not same(state[k], v) for k, v in untouched.items()):
        return Outcome(kind, "corrupt", seconds, "an untouched tensor changed or vanished", touched)
    changed = set(state) != set(original) or any(not same(state[k], original[k]) for k in original if k in state)
    return Outcome(kind, "changed" if changed else "identical", seconds, "", touched)
