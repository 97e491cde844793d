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
