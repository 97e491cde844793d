"""Structural validation of a ``.netp`` manifest: every field a reader, ``inspect`` or ``summarize`` touches has
the documented JSON type and range (``docs/format.md`` section 5), so nothing downstream meets a surprise type.

Decoding checks the values against the bytes (``tensors.py``, ``streams.py``); this module checks only the shape
of the JSON and never reads a section.
"""
from __future__ import annotations

import math

from netpress.encode.context import MAX_CONTEXTS
from netpress.encode.errors import NetpressFormatError, check
from netpress.encode.positions import METHODS
from netpress.errors import ConfigError

MAX_NAME = 1024
MAX_NDIM = 8
MAX_DIM = 1 << 40


def is_int(v: object, lo: int = 0, hi: int = 1 << 62) -> bool:
    """An integer (not a bool) in ``[lo, hi]``."""
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def check_manifest(manifest: dict) -> list[dict]:
    """Validate the manifest's top-level fields and every tensor entry's structure.

    Args:
        manifest: the parsed JSON object (its section table was checked by ``container.parse``).

    Returns:
        The tensor entries.

    Raises:
        NetpressFormatError: naming ``manifest``, ``model`` or the tensor.

    Example:
        >>> check_manifest(read_manifest("net.netp"))[0]["name"]
        'features.0.weight'
    """
    check(manifest.get("metrics") is None or isinstance(manifest["metrics"], dict), "manifest",
          "metrics must be an object")
    check(manifest.get("model_class") is None or isinstance(manifest["model_class"], str), "manifest",
          "model_class must be a string")
    check_model_spec(manifest.get("model"))
    tensors = manifest.get("tensors")
    check(isinstance(tensors, list) and all(isinstance(t, dict) for t in tensors), "manifest", "bad tensor list")
    names = set()
    for t in tensors:
        name = t.get("name")
        check(isinstance(name, str) and 0 < len(name) <= MAX_NAME, "manifest", f"bad tensor name {_short(name)}")
        check(name not in names, "manifest", f"duplicate tensor name {_short(name)}")
        names.add(name)
        _check_entry(t)
    return tensors


def check_model_spec(spec: object) -> None:
    """``model`` is ``null`` (a user model) or a valid registry spec (:func:`netpress.models.check_spec`)."""
    if spec is None:
        return
    from netpress.models import check_spec

    try:
        check_spec(spec)
    except ConfigError as exc:
        raise NetpressFormatError("model", str(exc)) from None


def shape_of(entry: dict) -> tuple[int, ...]:
    """The validated shape of a tensor entry."""
    shape = entry.get("shape")
    check(isinstance(shape, list) and len(shape) <= MAX_NDIM and all(is_int(d, 0, MAX_DIM - 1) for d in shape),
          str(entry.get("name")), f"bad shape {_short(shape)}")
    return tuple(shape)


def _check_entry(t: dict) -> None:
    name = t["name"]
    numel = math.prod(shape_of(t))
    kind = t.get("kind")
    check(kind in ("codes", "raw"), name, f"unknown tensor kind {_short(kind)}")
    check(isinstance(t.get("dtype"), str), name, f"bad dtype {_short(t.get('dtype'))}")
    check("kept" not in t or is_int(t["kept"], 0, numel), name, f"kept must be an integer in [0, {numel}]")
    if "positions" in t or kind == "codes":
        _check_positions(t.get("positions"), name)
    if kind == "codes":
        check(is_int(t.get("bits"), 1, 32), name, f"bad bit width {_short(t.get('bits'))}")
        check(t.get("axis") is None or is_int(t["axis"], 0, MAX_NDIM), name, f"bad axis {_short(t.get('axis'))}")
        if "affine" in t:  # integer codes with a scale and zero point per slice (values checked when decoded)
            check(isinstance(t["affine"], dict) and "codebook" not in t, f"{name}/affine", "bad affine entry")
        else:
            book = t.get("codebook")
            check(isinstance(book, dict) and isinstance(book.get("section"), str)
                  and isinstance(book.get("shape"), list), f"{name}/codebook", "bad codebook entry")
        _check_stream(t.get("values"), f"{name}/values")
    else:
        check(isinstance(t.get("section"), str), name, "bad section name")
        check(isinstance(t.get("compression"), str), name, f"bad compression {_short(t.get('compression'))}")
    check(isinstance(t.get("nonfinite", False), bool), name, "nonfinite must be true or false")


def _check_positions(pos: object, name: str) -> None:
    where = f"{name}/positions"
    check(isinstance(pos, dict) and isinstance(pos.get("params"), dict) and isinstance(pos.get("streams"), dict),
          where, "bad positions entry")
    check(pos.get("method") in METHODS, where, f"unknown position method {_short(pos.get('method'))}")
    b = pos["params"].get("b")
    check(b is None or is_int(b, 1, 64), where, f"bad gap width {_short(b)}")
    for s, meta in pos["streams"].items():
        _check_stream(meta, f"{name}/{s}")


def _check_stream(meta: object, where: str) -> None:
    check(isinstance(meta, dict), where, "bad stream entry")
    check(isinstance(meta.get("section"), str), where, "bad section name")
    check(isinstance(meta.get("coding"), str), where, f"bad coding {_short(meta.get('coding'))}")
    check(is_int(meta.get("count")), where, f"bad symbol count {_short(meta.get('count'))}")
    check(is_int(meta.get("alphabet"), 1), where, f"bad alphabet size {_short(meta.get('alphabet'))}")
    if meta["coding"] == "context":  # parameters of the context coder (docs/format.md 4.4)
        check(is_int(meta.get("contexts"), 1, MAX_CONTEXTS), where, f"bad context count {_short(meta.get('contexts'))}")
        check(is_int(meta.get("table_bytes")), where, f"bad table size {_short(meta.get('table_bytes'))}")
    entropy = meta.get("entropy")
    check(entropy is None or (isinstance(entropy, (int, float)) and not isinstance(entropy, bool)), where,
          "entropy must be a number")


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
