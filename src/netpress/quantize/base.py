"""What every weight quantizer shares: the parametrization base class, input checks and export.

A quantized weight is a :mod:`torch.nn.utils.parametrize` parametrization subclassing :class:`WeightQuantizer`.
Each one can describe the tensor it produces as :class:`~netpress.quantize.codes.Codes`, and its forward
returns exactly ``codes.decode()`` (the one codebook lookup), so exported codes and the model agree bit for bit.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from netpress.errors import ConfigError
from netpress.quantize.codes import Codes
from netpress.select import SelectorLike, closest, matches, select_tensors


class WeightQuantizer(nn.Module):
    """Base of weight-quantizing parametrizations.

    Subclasses implement ``codes(w)`` (the :class:`Codes` of the tensor this parametrization makes from its
    input ``w``) and ``forward(w)``, which must return values equal to ``codes(w).decode()``.

    Attributes:
        stored_codes: True when ``forward(w)`` is literally the decode of stored codes (``codes().decode()`` cast
            to ``w``'s dtype, whatever ``w``), so a saver need not compute the weight to check its codes.
    """

    stored_codes = False

    def codes(self, w: torch.Tensor) -> Codes:  # pragma: no cover - abstract
        raise NotImplementedError


def check_bits(bits: int, what: str = "bits") -> int:
    """Return ``bits`` if it is an int in 1..16, else raise :class:`ConfigError`."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ConfigError(f"{what} must be an integer from 1 to 16, got {bits!r}")
    return bits


CHECK_CHUNK = 1 << 20  # values per step of the input checks (bounds their temporaries)


def check_finite(name: str, w: torch.Tensor) -> None:
    """Raise :class:`ConfigError` if tensor ``name`` holds NaN or Inf (checked in chunks: O(chunk) temporaries)."""
    parts = w.detach().reshape(-1).split(CHECK_CHUNK)
    if not all(bool(torch.isfinite(p).all()) for p in parts):
        bad = sum(int((~torch.isfinite(p)).sum()) for p in parts)
        raise ConfigError(f"{name} contains {bad} NaN/Inf value(s); cannot quantize it")


def selected_tensors(model: nn.Module, names: SelectorLike = None,
                     exclude: Iterable[str] = ()) -> dict[str, tuple[nn.Module, str]]:
    """Tensors to quantize by plain name, as ``{name: (module, attr)}`` (see :func:`netpress.select.select_tensors`).

    ``names``: exact names, selector strings or a :class:`~netpress.select.Selector`; default: Linear, Conv and
    Embedding weights. Anything that matches nothing is a ConfigError naming the closest real names.
    """
    return select_tensors(model, names, exclude)


def bits_per_tensor(bits: int | dict[str, int], names: Iterable[str]) -> dict[str, int]:
    """Expand ``bits`` to a checked ``{name: bits}``.

    Args:
        bits: one int, or ``{key: bits}`` whose keys are exact names, globs or ``'re:'`` regexes (exact names
            first, then patterns in order); every key must match a name and every name must be covered.
        names: the selected tensors' plain names.

    Returns:
        ``{name: bits}`` in the order of ``names``.

    Raises:
        ConfigError: a key matching no tensor (naming the closest), an uncovered name, or bits outside 1-16.
    """
    names = list(names)
    if not isinstance(bits, dict):
        check_bits(bits)
        return {n: bits for n in names}
    return {n: check_bits(b, f"bits of {n}") for n, b in per_name(bits, names, "bits").items()}


def per_name(table: dict, names: Iterable[str], what: str = "key") -> dict:
    """Resolve ``{exact name | glob | 're:' regex: value}`` to ``{name: value}`` (exact names win, then patterns
    in order); a key matching nothing or a name left uncovered is a :class:`ConfigError`."""
    names = list(names)
    for key in table:
        if key not in names and not any(matches(key, n, n.rpartition(".")[0]) for n in names):
            raise ConfigError(f"{what} key {key!r} matches no selected tensor; {closest(key, names)}")
    out = {}
    for n in names:
        key = n if n in table else next((k for k in table if matches(k, n, n.rpartition(".")[0])), None)
        if key is None:
            raise ConfigError(f"{what}: nothing given for {n!r} (add it or a pattern such as '*')")
        out[n] = table[key]
    return out


def quantizer_of(module: nn.Module, attr: str) -> tuple[WeightQuantizer, int] | None:
    """The weight quantizer on ``module.attr`` and its position in the parametrization list, if any."""
    if not parametrize.is_parametrized(module, attr):
        return None
    for i, p in enumerate(module.parametrizations[attr]):
        if isinstance(p, WeightQuantizer):
            return p, i
    return None


def quantizer_input(module: nn.Module, attr: str, position: int) -> torch.Tensor:
    """The tensor entering the parametrization at ``position`` (the original through any earlier ones)."""
    plist = module.parametrizations[attr]
    w = plist.original
    for p in list(plist)[:position]:
        w = p(w)
    return w


def quantized_tensors(model: nn.Module) -> dict[str, tuple[nn.Module, str, WeightQuantizer, int]]:
    """Every quantized tensor by plain name: ``(module, attr, quantizer, position)``."""
    out = {}
    for mname, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for attr in list(module.parametrizations.keys()):
            found = quantizer_of(module, attr)
            if found is not None:
                out[f"{mname}.{attr}" if mname else attr] = (module, attr, *found)
    return out


@torch.no_grad()
def export_codes(model: nn.Module) -> dict[str, Codes]:
    """The :class:`Codes` of every quantized tensor (k-means, uniform, binary, ternary, ...), by plain name.

    Args:
        model: a model with quantized weights (e.g. after :func:`~netpress.quantize.share_weights`).

    Returns:
        ``{plain_name: Codes}``; ``codes.decode()`` equals the model's effective weight exactly.

    Example:
        >>> codes = export_codes(share_weights(net, bits=5))
        >>> torch.equal(codes["fc1.weight"].decode(), net.fc1.weight)
        True
    """
    return {name: q.codes(quantizer_input(m, attr, pos)) for name, (m, attr, q, pos) in quantized_tensors(model).items()}


def remove_quantizer(module: nn.Module, attr: str) -> None:
    """Make one tensor's quantization permanent (plain float values equal to the decoded ones)."""
    original = module.parametrizations[attr].original
    parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
    getattr(module, attr).requires_grad_(True)
    del original


def tensor_bits(codes: Codes) -> int:
    """Storage in bits of one Codes with fixed-length indices and float32 codebook (the seed's formula); affine
    codes count a 32-bit scale and zero point per slice instead of a codebook."""
    if codes.affine:
        return codes.indices.numel() * codes.bits + codes.scale.numel() * 64
    return codes.indices.numel() * codes.bits + codes.codebook.numel() * 32


def kmeans_compression_rate(n: int, k: int, b: int = 32) -> float:
    """Deep Compression's rate for ``n`` weights of ``b`` bits shared into ``k`` values: nb / (n log2 k + kb)."""
    return n * b / (n * math.log2(k) + k * b)
