"""``netpress.save`` / ``netpress.load``: a model to a ``.netp`` file and back."""
from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn

from netpress.encode import container
from netpress.encode.errors import NetpressFormatError, check
from netpress.encode.manifest import check_manifest
from netpress.encode.streams import CODERS
from netpress.encode.tensors import (Reader, Sections, decode_entry, decodes_to, encode_codes, encode_raw,
                                     entry_shape)
from netpress.errors import ConfigError
from netpress.quantize.codes import Codes
from netpress.state import plain_names

ELEMENTS_PER_FILE_BYTE = 256    # decoded elements allowed per file byte (1024x the fp32 size; bounds decode work)
BASE_ELEMENTS = 1 << 16         # plus this many for tiny files


def save(model: nn.Module, path: str | os.PathLike, *, recipe: Any = None, metrics: dict | None = None,
         coder: str = "huffman", codes: dict[str, Codes] | None = None, codebook_dtype: str = "auto") -> dict:
    """Write ``model`` as a compressed ``.netp`` file (atomically), one tensor at a time (bounded memory).

    Quantized tensors (those :func:`netpress.quantize.export_codes` reports, or ``codes``) are stored as
    positions + entropy-coded indices + a codebook (or, for per-channel / per-group uniform codes, a scale and
    zero point per slice); every other tensor of the state dict raw, zstd- or byte-plane-compressed (sparse when
    that is smaller; large incompressible tensors are stored plain after a quick probe). Pruning masks are folded
    in (effective weights are saved). Activation quantizers (PTQ / QAT) are recorded in the manifest and rebuilt
    by :func:`load`.

    Args:
        model: any module; registry models (with ``netpress_spec``) can later be loaded without ``model=``.
        path: the file to write.
        recipe: how the model was made (any JSON-able value), stored in the manifest.
        metrics: measured results (e.g. ``{'test_accuracy': 0.89}``), stored in the manifest.
        coder: ``'huffman'`` (default), ``'ans'``, ``'context'`` (ANS or the context coder, whichever is smaller),
            ``'auto'`` (smallest per stream) or ``'packed'`` (fixed-width fields, no entropy coding: Deep
            Compression's P+Q stage).
        codes: explicit ``{plain_name: Codes}`` (default: ``export_codes(model)``).
        codebook_dtype: ``'auto'`` (float16 codebooks / scales where the decoded weights stay bit-identical),
            ``'float32'``, or ``'float16'`` (always; lossy: the file then decodes to float16-rounded values).

    Returns:
        The report of :func:`summarize` (per-tensor sizes, totals, ratio).

    Raises:
        ConfigError: unknown coder or codebook dtype, or Codes that do not reproduce the model's weights.

    Example:
        >>> report = netpress.save(share_weights(prune(net, 0.9), 5), "net.netp", metrics={"test_accuracy": 0.88})
        >>> report["ratio"]
        41.3...
    """
    from netpress.encode.tensors import BOOK_DTYPES

    if coder not in CODERS:
        raise ConfigError(f"unknown coder {coder!r}; known: {', '.join(CODERS)}")
    if codebook_dtype not in BOOK_DTYPES:
        raise ConfigError(f"unknown codebook_dtype {codebook_dtype!r}; known: {', '.join(BOOK_DTYPES)}")
    names = list(plain_names(model))
    explicit = None if codes is None else dict(codes)
    unknown = sorted(set(explicit or ()) - set(names))
    if unknown:
        raise ConfigError(f"Codes for {unknown[0]!r}, which the model does not have; tensors: {', '.join(names)}")
    quantized = _quantizer_inputs(model) if explicit is None else {}
    sections, entries = Sections(), []
    for name in names:
        if explicit is None and _stored(quantized.get(name)):  # the weight is a decode of these very codes
            c = _codes_of(quantized[name])
            entries.append(encode_codes(name, c, sections, coder, codebook_dtype))
            _mark_nonfinite(entries[-1], c.scale if c.codebook is None else c.codebook)
            if not any(p.requires_grad for p in quantized[name][2].parameters()):  # what autograd would say
                entries[-1]["frozen"] = True
            del c
            continue
        tensor, frozen = _plain_tensor(model, name)
        c = explicit.get(name) if explicit is not None else _codes_of(quantized.get(name))
        if c is None:
            entries.append(encode_raw(name, tensor, sections, coder))
            _mark_nonfinite(entries[-1], tensor)
            continue
        _check_codes(name, c, tensor)
        del tensor
        entries.append(encode_codes(name, c, sections, coder, codebook_dtype))
        _mark_nonfinite(entries[-1], c.scale if c.codebook is None else c.codebook)
        if frozen and name in quantized:
            entries[-1]["frozen"] = True
        del c
    manifest = _manifest(model, entries, recipe, metrics, coder)
    acts = activation_manifest(model)
    if acts:
        manifest["activation_quantizers"] = acts
    size = container.write_file(path, manifest, sections.items)
    lengths = [{"name": n, "length": len(d)} for n, d in sections.items]
    data_length = sum(x["length"] for x in lengths)
    return summarize({**manifest, "sections": lengths, "file_bytes": size, "manifest_bytes": size - data_length})


def _mark_nonfinite(entry: dict, stored: torch.Tensor) -> None:
    """Readers reject NaN/inf unless the entry says the model really has them."""
    if stored.is_floating_point() and not bool(torch.isfinite(stored).all()):
        entry["nonfinite"] = True


def _plain_tensor(model: nn.Module, name: str) -> tuple[torch.Tensor, bool]:
    """The effective value of one plain-named tensor (parametrizations applied), detached, and whether it is
    frozen (computed from buffers only, e.g. PTQ codes: no gradient reaches it)."""
    module = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    with torch.enable_grad():
        value = getattr(module, name.rpartition(".")[2])
    return value.detach(), not value.requires_grad


def _quantizer_inputs(model: nn.Module) -> dict:
    from netpress.quantize import quantized_tensors

    return quantized_tensors(model)


def _stored(found) -> bool:
    """A float32 weight whose last parametrization decodes stored codes: no need to compute it to check them."""
    if found is None:
        return False
    module, attr, q, pos = found
    plist = module.parametrizations[attr]
    return q.stored_codes and pos == len(plist) - 1 and plist.original.dtype == torch.float32


def _codes_of(found) -> Codes | None:
    if found is None:
        return None
    from netpress.quantize import quantizer_input

    module, attr, q, pos = found
    with torch.no_grad():
        return q.codes(quantizer_input(module, attr, pos))


def _check_codes(name: str, c: Codes, tensor: torch.Tensor) -> None:
    if not decodes_to(c, tensor):
        raise ConfigError(f"Codes for {name} do not reproduce the model's weights exactly; "
                          "re-export them from the quantized model")


def activation_manifest(model: nn.Module) -> dict:
    """``{layer: {spec fields, 'mode'}}`` of the model's activation quantizers (their ranges are state tensors)."""
    from netpress.quantize import activation_quantizers

    return {name: {**q.spec.to_dict(), "mode": q.mode} for name, q in activation_quantizers(model).items()}


def activation_specs(manifest: dict) -> dict:
    """The validated ``{layer: (UniformSpec, mode)}`` a manifest records (empty for files without them)."""
    from netpress.quantize import ACTIVATION_MODES as MODES
    from netpress.quantize import UniformSpec

    acts = manifest.get("activation_quantizers") or {}
    check(isinstance(acts, dict) and all(isinstance(v, dict) for v in acts.values()), "manifest",
          "bad activation_quantizers entry")
    out = {}
    for layer, entry in acts.items():
        fields = {k: v for k, v in entry.items() if k != "mode"}
        try:
            out[layer] = (UniformSpec(**fields), entry.get("mode", "static"))
        except (TypeError, ConfigError) as exc:
            raise NetpressFormatError("manifest", f"bad activation quantizer for {layer!r} ({exc})") from None
        check(out[layer][1] in MODES, "manifest", f"bad activation quantizer mode for {layer!r}")
    return out


def rebuild_activation_quantizers(model: nn.Module, specs: dict) -> list[str]:
    """Attach the activation quantizers ``specs`` names that ``model`` lacks; returns the layers it added.

    Raises:
        ConfigError: a layer ``model`` does not have (nothing is attached then).
    """
    from netpress.quantize import activation_quantizers, add_activation_quantizers

    modules = dict(model.named_modules())
    missing = [layer for layer in specs if layer not in modules]
    if missing:
        raise ConfigError(f"the file quantizes the input of {missing[0]!r}, which {type(model).__name__} lacks")
    have = activation_quantizers(model)
    added = [layer for layer in specs if layer not in have]
    for layer in added:
        add_activation_quantizers(model, specs[layer][0], specs[layer][1], [layer])
    return added


def _manifest(model: nn.Module, entries: list[dict], recipe: Any, metrics: dict | None, coder: str) -> dict:
    import netpress

    spec = getattr(model, "netpress_spec", None)
    return {"format": "netp", "netpress_version": netpress.__version__, "model": dict(spec) if spec else None,
            "model_class": type(model).__name__, "recipe": recipe, "metrics": metrics or {}, "coder": coder,
            "tensors": entries}


def read_manifest(path: str | os.PathLike, verify: bool = True) -> dict:
    """The validated manifest of a ``.netp`` file, plus ``file_bytes`` and ``manifest_bytes``; decodes no tensor.

    Args:
        path: the file.
        verify: also check every section's CRC32.

    Returns:
        The manifest dict (see ``docs/format.md``).

    Raises:
        NetpressFormatError: the file is not a readable ``.netp`` container.

    Example:
        >>> read_manifest("net.netp")["metrics"]
        {'test_accuracy': 0.874}
    """
    blob = container.read_bytes(path)
    manifest, _, mlen = container.parse(blob, verify)
    check_manifest(manifest)
    return {**manifest, "file_bytes": len(blob), "manifest_bytes": mlen + container.HEADER.size}


def element_limit(file_bytes: int) -> int:
    """The most tensor elements :func:`load_state` decodes from a file of ``file_bytes`` bytes by default."""
    return BASE_ELEMENTS + ELEMENTS_PER_FILE_BYTE * file_bytes


def load_state(path: str | os.PathLike, max_elements: int | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Decode every tensor of a ``.netp`` file (fully validated) without building a model.

    Args:
        path: the file.
        max_elements: the most tensor elements to decode (default :func:`element_limit`: ``2**16 + 256 *`` file
            size in bytes); decode time and memory are linear in it.

    Returns:
        ``({plain_name: tensor}, manifest)`` (the manifest with ``file_bytes`` added).

    Raises:
        NetpressFormatError: anything wrong with the file, naming the section.
    """
    blob = container.read_bytes(path)
    manifest, sections, _ = container.parse(blob)
    tensors = check_manifest(manifest)
    limit = max_elements if max_elements is not None else element_limit(len(blob))
    total = sum(math.prod(entry_shape(t)) for t in tensors)
    check(total <= limit, "manifest", f"declares {total} elements, more than the limit {limit} for a "
          f"{len(blob)}-byte file (pass max_elements= to allow more)")
    reader = Reader(sections)
    state = {}
    for t in tensors:
        try:
            state[t["name"]] = decode_entry(t, reader)
        except NetpressFormatError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, RuntimeError, MemoryError) as exc:
            raise NetpressFormatError(t["name"], f"cannot decode ({type(exc).__name__}: {exc})") from None
    return state, {**manifest, "file_bytes": len(blob)}


def load(path: str | os.PathLike, model: nn.Module | None = None, *, max_elements: int | None = None) -> nn.Module:
    """Read a ``.netp`` file into a working model.

    Args:
        path: the file.
        model: the module to fill (required for models not from the registry); default: rebuild the registry
            model named in the manifest.
        max_elements: see :func:`load_state`.

    Returns:
        The model with the decoded weights (bit-identical to the saved quantized model's), in eval mode.

    Raises:
        NetpressFormatError: malformed file, including a registry spec that is invalid, too large for the file,
            or whose rebuilt layers do not match the tensors or each other (nothing is loaded into ``model``).
        ConfigError: the file's tensors do not fit ``model``, or no model given for a non-registry file.

    Example:
        >>> net = netpress.load("net.netp")                 # registry model
        >>> mine = netpress.load("mine.netp", model=MyNet())  # user model
    """
    state, manifest = load_state(path, max_elements)
    specs = activation_specs(manifest)
    if model is None:
        limit = max_elements if max_elements is not None else element_limit(manifest["file_bytes"])
        model, added = _rebuild(manifest, state, limit, specs), []
    else:
        added = rebuild_activation_quantizers(model, specs)
    try:
        _check_fits(model, state)
    except ConfigError:
        from netpress.quantize import remove_activation_quantizers

        remove_activation_quantizers(model, added)
        raise
    from netpress.state import load_plain_state_dict

    with torch.no_grad():
        load_plain_state_dict(model, state)
    _freeze(model, manifest)
    return model.eval()


def _freeze(model: nn.Module, manifest: dict) -> None:
    """Tensors saved from frozen quantizers (PTQ codes) load with ``requires_grad=False``, as they were in memory
    (this also keeps torch's matmul path, hence the outputs, bit-identical)."""
    from torch.nn.utils import parametrize

    for t in manifest["tensors"]:
        if t.get("frozen") is True:
            mname, _, attr = t["name"].rpartition(".")
            module = model.get_submodule(mname) if mname else model
            value = getattr(module, attr, None)
            if isinstance(value, nn.Parameter) and not parametrize.is_parametrized(module, attr):
                value.requires_grad_(False)


def _rebuild(manifest: dict, state: dict[str, torch.Tensor], limit: int, activations: dict) -> nn.Module:
    """The registry model the manifest names, resized to the file's tensors and checked to chain (one meta-device
    forward pass), with the file's activation quantizers; its size before resizing counts against the same
    element limit as the tensors."""
    spec = manifest.get("model")
    if not spec:
        raise ConfigError(f"this file holds a {manifest.get('model_class', 'user')} model that is not in the registry; "
                          "pass it: netpress.load(path, model=MyNet())")
    from netpress.models import check_forward, model_from_spec, spec_parameters

    try:
        needed = spec_parameters(spec)
        check(needed <= limit, "model", f"{spec['name']} on input {spec['input_shape']} has {needed} parameters, "
              f"more than the limit {limit} for this file (pass max_elements= to allow more)")
        model = model_from_spec(spec)
        _thin_to(model, state)
        check_forward(model, spec)
        rebuild_activation_quantizers(model, activations)
        _check_fits(model, state)
    except NetpressFormatError:
        raise
    except ConfigError as exc:
        raise NetpressFormatError("model", str(exc)) from None
    except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as exc:  # resizing odd shapes
        raise NetpressFormatError("model", f"cannot rebuild ({type(exc).__name__}: {exc})") from None
    return model


def _thin_to(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """A registry model that was structurally pruned (thinned) gets the smaller layer sizes stored in the file."""
    from netpress.state import resize_to

    own = model.state_dict()
    if all(k in own for k in state):
        resize_to(model, {k: v for k, v in state.items() if v.dim() == own[k].dim()})


def _check_fits(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    from netpress.state import plain_state_dict

    own = {k: tuple(v.shape) for k, v in plain_state_dict(model).items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = sorted(set(own) - set(got)), sorted(set(got) - set(own))
    wrong = [f"{k}: file {got[k]} vs model {own[k]}" for k in own if k in got and got[k] != own[k]]
    if missing or unexpected or wrong:
        raise ConfigError(f"the file does not fit {type(model).__name__}: missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}, shape mismatch {wrong[:5]}")


def summarize(manifest: dict) -> dict:
    """Per-tensor size table (Deep Compression Tables 2-3) and totals, from a manifest alone.

    Args:
        manifest: from :func:`read_manifest`.

    Example:
        >>> summarize(read_manifest("net.netp"))["ratio"]
        36.2...

    Returns:
        ``{'tensors': [row, ...], 'file_bytes', 'manifest_bytes', 'weight_bytes', 'index_bytes', 'codebook_bytes',
        'raw_bytes', 'fp32_bytes', 'ratio', 'metrics', 'model'}``; each row has ``name, weights, kept,
        kept_fraction, bits, weight_bits_coded, index_bits, codebook_bytes, total_bytes, ratio``.
    """
    try:
        return _summarize(manifest)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError) as exc:
        raise NetpressFormatError("manifest", f"cannot summarise ({type(exc).__name__}: {exc})") from None


def _summarize(manifest: dict) -> dict:
    lengths = {s["name"]: s["length"] for s in manifest["sections"]}
    rows = [_row(t, lengths) for t in manifest["tensors"]]
    fp32 = sum(4 * r["weights"] for r in rows)
    file_bytes = manifest.get("file_bytes", sum(lengths.values()))
    keys = ("weight_bytes", "index_bytes", "codebook_bytes", "raw_bytes")
    totals = {k: sum(r[k] for r in rows) for k in keys}
    return {"tensors": rows, "streams": stream_stats(manifest), "file_bytes": file_bytes,
            "manifest_bytes": manifest.get("manifest_bytes", 0), **totals, "fp32_bytes": fp32,
            "ratio": fp32 / max(file_bytes, 1), "metrics": manifest.get("metrics", {}),
            "model": manifest.get("model"), "recipe": manifest.get("recipe")}


def stream_stats(manifest: dict) -> list[dict]:
    """Per entropy-coded stream: coding, symbols, bits per symbol (section size), empirical entropy and the gap."""
    lengths = {s["name"]: s["length"] for s in manifest["sections"]}
    out = []
    for t in manifest["tensors"]:
        metas = list((t.get("positions") or {}).get("streams", {}).values())
        metas += [t["values"]] if "values" in t else []
        zero_point = (t.get("affine") or {}).get("zero_point", {})
        metas += [zero_point["stream"]] if "stream" in zero_point else []
        for m in metas:
            n = max(m["count"], 1)
            bps = 8 * lengths.get(m["section"], 0) / n
            out.append({"stream": m["section"], "coding": m["coding"], "symbols": m["count"],
                        "alphabet": m["alphabet"], "bits_per_symbol": bps, "entropy": m.get("entropy"),
                        "gap": bps - m["entropy"] if isinstance(m.get("entropy"), (int, float)) else None})
    return out


def _row(t: dict, lengths: dict[str, int]) -> dict:
    weights = math.prod(t["shape"])  # exact: crafted shapes may overflow int64
    pos = t.get("positions") or {"method": "dense", "streams": {}, "params": {}}
    index_bytes = sum(lengths.get(s.get("section"), 0) for s in pos["streams"].values())
    row = {"name": t["name"], "kind": t["kind"], "weights": weights, "positions": pos["method"],
           "gap_bits": pos["params"].get("b"), "index_bytes": index_bytes, "weight_bytes": 0, "codebook_bytes": 0,
           "raw_bytes": 0}
    if t["kind"] == "codes":
        kept = int(t.get("kept", weights))
        book = [t["codebook"]] if "codebook" in t else [t["affine"]["scale"],
                                                        t["affine"]["zero_point"].get("stream", t["affine"]["zero_point"])]
        row.update(kept=kept, bits=t["bits"], weight_bytes=lengths.get(t["values"]["section"], 0),
                   codebook_bytes=sum(lengths.get(b["section"], 0) for b in book), values_coding=t["values"]["coding"])
        row["weight_bits_coded"] = 8 * row["weight_bytes"] / max(kept, 1)
    else:
        row.update(raw_bytes=lengths.get(t.get("section"), 0), bits=32, values_coding=t.get("compression"),
                   kept=weights if "positions" not in t else None, weight_bits_coded=None)
    row["index_bits"] = 8 * index_bytes / max(row["kept"] or weights, 1)
    row["kept_fraction"] = (row["kept"] / weights) if (row["kept"] is not None and weights) else None
    row["total_bytes"] = row["index_bytes"] + row["weight_bytes"] + row["codebook_bytes"] + row["raw_bytes"]
    row["ratio"] = 4 * weights / max(row["total_bytes"], 1)
    return row
