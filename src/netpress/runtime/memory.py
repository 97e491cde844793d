"""Resident weight bytes: what a model's parameters, buffers and packed kernel weights occupy in memory."""
from __future__ import annotations

import itertools

import torch
from torch import nn


def resident_bytes(model: nn.Module, by_layer: bool = False) -> int | dict[str, int]:
    """Bytes of every parameter and buffer (each storage counted once; CSR tensors as their three arrays) plus
    the packed weights that kernels hold outside tensors (``opaque_bytes()``, e.g. fbgemm's int8 packs).

    Args:
        model: any module (dense, or converted by :func:`netpress.runtime.convert`).
        by_layer: return ``{module_name: bytes}`` of each module's own tensors instead of the total.

    Returns:
        Total bytes, or the per-module dict.

    Example:
        >>> resident_bytes(convert(compressed)) / resident_bytes(dense)
        0.26...
    """
    if by_layer:
        return {n: _own_bytes(m, set()) for n, m in model.named_modules() if _own_bytes(m, set())}
    seen: set = set()
    return sum(_own_bytes(m, seen) for m in model.modules())


def _own_bytes(module: nn.Module, seen: set) -> int:
    total = int(module.opaque_bytes()) if hasattr(module, "opaque_bytes") else 0
    tensors = itertools.chain(module.parameters(recurse=False), module.buffers(recurse=False))
    for t in tensors:
        if t is None:
            continue
        for part in _parts(t):
            key = (part.untyped_storage().data_ptr(), part.device)
            if key not in seen:
                seen.add(key)
                total += part.untyped_storage().nbytes()
    return total


def _parts(t: torch.Tensor) -> list[torch.Tensor]:
    if t.layout == torch.sparse_csr:
        return [t.crow_indices(), t.col_indices(), t.values()]
    if t.layout == torch.sparse_coo:
        return [t._indices(), t._values()]
    return [t]
