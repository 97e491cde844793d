"""Uniform affine arithmetic shared by weight and activation quantizers and by calibration.

``x_int = clamp(round(x * (1/s)) + z, qmin, qmax)``, ``x_hat = (x_int - z) * s``, in torch's own arithmetic, so
at 8 bits it matches ``torch.fake_quantize_per_tensor_affine`` bit for bit. This module is the bottom of
:mod:`netpress.quantize`: it imports nothing from the package, so calibration and the quantizers can all use it.

A ``spec`` here is anything with ``bits``, ``symmetric``, ``signed``, ``qmin`` and ``qmax``
(a :class:`~netpress.quantize.uniform.UniformSpec`).
"""
from __future__ import annotations

import torch


def qparams(lo: torch.Tensor, hi: torch.Tensor, spec) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale (float32) and zero point (int64) of each range, following torch's observer conventions.

    The range is widened to include 0 so that 0 (a pruned weight, a ReLU zero) is exactly representable.

    Args:
        lo: lower clipping bounds.
        hi: upper clipping bounds.
        spec: the quantizer.

    Returns:
        ``(scale, zero_point)`` of ``lo``'s shape.

    Example:
        >>> qparams(torch.tensor([-1.0]), torch.tensor([1.0]), UniformSpec(bits=8))
        (tensor([0.0078]), tensor([0]))
    """
    lo = torch.minimum(lo.float(), torch.zeros_like(lo, dtype=torch.float32))
    hi = torch.maximum(hi.float(), torch.zeros_like(hi, dtype=torch.float32))
    eps = torch.finfo(torch.float32).eps
    if spec.symmetric:
        amax = torch.maximum(-lo, hi)
        scale = _scale_dtype((amax / ((spec.qmax - spec.qmin) / 2)).clamp_min(eps), spec)
        zp = torch.full_like(scale, 0 if spec.signed else (spec.qmin + spec.qmax + 1) // 2, dtype=torch.int64)
    else:
        scale = _scale_dtype(((hi - lo) / float(spec.qmax - spec.qmin)).clamp_min(eps), spec)
        zp = (spec.qmin - torch.round(lo / scale)).clamp(spec.qmin, spec.qmax).to(torch.int64)
    return scale, zp


def _scale_dtype(scale: torch.Tensor, spec) -> torch.Tensor:
    """Scales rounded to float16 (kept > 0) when ``spec.scale_dtype`` asks for it, else unchanged."""
    if getattr(spec, "scale_dtype", "float32") != "float16":
        return scale
    return scale.clamp(2.0 ** -24, 65504.0).to(torch.float16).to(torch.float32)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Integer codes ``clamp(round(x * (1/s)) + z, qmin, qmax)`` as int64 (scale/zero point broadcastable)."""
    inv = torch.reciprocal(scale.float())
    return (torch.round(x.float() * inv) + zero_point).clamp(qmin, qmax).to(torch.int64)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """``(q - z) * s`` in float32."""
    return (q - zero_point).float() * scale.float()


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Quantize then dequantize (no gradient logic; see :class:`STEFakeQuantize` for training).

    Example:
        >>> fake_quantize(torch.tensor([0.26]), torch.tensor(0.1), torch.tensor(0), -128, 127)
        tensor([0.3000])
    """
    return dequantize(quantize(x, scale, zero_point, qmin, qmax), scale, zero_point)
