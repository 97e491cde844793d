"""The runtime forms ``netpress.load(path, runtime=...)`` accepts."""
from __future__ import annotations

import os
from typing import Any

from torch import nn

from netpress.errors import ConfigError
from netpress.runtime.convert import RuntimeHparams, convert
from netpress.runtime.kernels import KERNELS
from netpress.runtime.plan import Plan


def check_runtime(runtime: Any) -> None:
    """Raise ConfigError unless ``runtime`` is ``'auto'``, a kernel kind, a plan (object or ``.json`` path) or
    :class:`RuntimeHparams`."""
    if isinstance(runtime, (Plan, RuntimeHparams)):
        return
    if isinstance(runtime, (str, os.PathLike)):
        text = os.fspath(runtime)
        if text == "auto" or text in KERNELS:
            return
        if text.endswith(".json"):
            if not os.path.exists(text):
                raise ConfigError(f"runtime plan {text} does not exist")
            return
    raise ConfigError(f"unknown runtime {runtime!r}; known: auto, {', '.join(KERNELS.names())}, a plan .json file")


def load(path: str | os.PathLike, model: nn.Module | None = None, *, max_elements: int | None = None,
         runtime: Any = None) -> nn.Module:
    """``netpress.load``: decode a ``.netp`` file (:func:`netpress.encode.load`), optionally into a runtime form.

    Args:
        path: the file.
        model: the module to fill (required for models not from the registry).
        max_elements: see :func:`netpress.encode.load_state`.
        runtime: None (the decoded fp32 model), or a runtime form (``'auto'``, a kernel kind, a Plan or plan
            ``.json``, :class:`RuntimeHparams`): see :func:`for_file`. Checked before the file is read.

    Returns:
        The model in eval mode.

    Example:
        >>> fast = netpress.load("net.netp", runtime="auto")
    """
    from netpress.encode import load as decode, read_manifest

    if runtime is not None:
        check_runtime(runtime)
    decoded = decode(path, model, max_elements=max_elements)
    return decoded if runtime is None else for_file(decoded, read_manifest(path, verify=False), runtime)  # CRCs were just checked by decode


def for_file(model: nn.Module, manifest: dict, runtime: Any) -> nn.Module:
    """Convert a model just decoded from a ``.netp`` file to a runtime form.

    The manifest says which weights were stored quantized (entries of kind ``codes``); only those may run from
    int8 / low-bit weights.

    Args:
        model: the decoded model.
        manifest: the file's manifest.
        runtime: ``'auto'`` (kernels timed per layer on this machine), a kernel kind (``'int8'``, ``'lowbit'``,
            ``'csr'``, ``'dense'``: that kind wherever it applies, else dense; no timing), a :class:`Plan` or a
            plan ``.json`` file (re-applied), or :class:`RuntimeHparams`.

    Returns:
        The runtime model (with ``runtime_plan``).

    Example:
        >>> fast = netpress.load("net.netp", runtime="auto")
    """
    check_runtime(runtime)
    names = [t["name"] for t in manifest.get("tensors", []) if t.get("kind") == "codes"]
    if isinstance(runtime, Plan):
        return convert(model, names, plan=runtime)
    if isinstance(runtime, RuntimeHparams):
        return convert(model, names, hp=runtime)
    text = os.fspath(runtime)
    if text == "auto":
        return convert(model, names)
    if text in KERNELS:
        return convert(model, names, hp=RuntimeHparams(kinds=(text,), measure=False))
    return convert(model, names, plan=Plan.load(text))


def inspect_runtime(path: str | os.PathLike, hp: RuntimeHparams = RuntimeHparams(), *,
                    model: nn.Module | None = None, example_inputs: list | None = None) -> dict:
    """The measured per-layer plan of a ``.netp`` file on this machine, and resident bytes dense vs runtime.

    Args:
        path: a ``.netp`` file.
        hp: see :class:`RuntimeHparams` (``cache`` to reuse timings).
        model: the module to decode into (required for models not from the registry, e.g. an architecture rebuilt
            by :func:`netpress.hf.load`'s ``from_spec``).
        example_inputs: one input per batch size to time the layers on (default: random inputs of a registry
            model's ``input_shape``).

    Returns:
        ``{'machine', 'batch_sizes', 'layers': [plan row], 'plan': Plan.to_dict(), 'dense_bytes', 'resident_bytes'}``.

    Example:
        >>> inspect_runtime("net.netp")["layers"][0]["kind"]
        'csr'
    """
    from netpress.encode import load as decode, read_manifest
    from netpress.runtime.memory import resident_bytes

    dense = decode(path, model)
    names = [t["name"] for t in read_manifest(path, verify=False).get("tensors", []) if t.get("kind") == "codes"]
    fast = convert(dense, names, hp=hp, example_inputs=example_inputs)  # a copy: ``dense`` stays as decoded
    plan = fast.runtime_plan
    return {"machine": plan.machine, "batch_sizes": list(hp.batch_sizes), "layers": plan.rows(),
            "plan": plan.to_dict(), "dense_bytes": resident_bytes(dense), "resident_bytes": resident_bytes(fast)}


def export_file(path: str | os.PathLike, out: str | os.PathLike, *, batch: int = 1, requant_tol: float = 0.01) -> dict:
    """``.netp`` -> ONNX (QDQ int8 weights), then run it in onnxruntime against the decoded model.

    Args:
        path: a ``.netp`` file of a registry model.
        out: the ``.onnx`` file.
        batch: batch size of the check input (the exported batch dimension is dynamic).
        requant_tol: see :func:`netpress.runtime.export_onnx`.

    Returns:
        The export report plus ``max_abs_diff`` and ``max_abs_output`` of onnxruntime vs netpress on a random batch.

    Example:
        >>> export_file("net.netp", "net.onnx")["max_abs_diff"]
        0.0031
    """
    import torch

    from netpress.encode import load, read_manifest
    from netpress.runtime.onnx_export import export_onnx, run_onnx

    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    manifest = read_manifest(path)
    shape = (manifest.get("model") or {}).get("input_shape")
    if not shape:
        raise ConfigError("ONNX export from the command line needs a registry model; from Python use "
                          "netpress.runtime.export_onnx(model, example_inputs, path)")
    model = load(path)
    names = [t["name"] for t in manifest["tensors"] if t.get("kind") == "codes"]
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
    report = export_onnx(model, x, out, codes=names, requant_tol=requant_tol)
    with torch.no_grad():
        ref = model(x).numpy()
    diff = abs(run_onnx(out, x) - ref).max()
    return {**report, "max_abs_diff": float(diff), "max_abs_output": float(abs(ref).max())}
