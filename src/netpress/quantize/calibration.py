"""Calibration of the clipping range [lo, hi] of a uniform quantizer, one range per slice (row) of a 2-D view.

Registered calibrators: ``minmax``, ``percentile``, ``mse`` (grid search of the clipping fraction minimising the
quantization MSE) and ``aciq_laplace`` / ``aciq_gaussian`` (Banner et al.'s analytical clipping: the alpha that
minimises clipping noise + rounding noise for a Laplace / Gaussian fit, solved numerically per bit width).

Every calibrator is ``f(x2d, spec) -> (lo, hi)`` with ``x2d`` of shape ``[slices, values]``.

Example:
    >>> lo, hi = CALIBRATORS.get("mse")(torch.randn(4, 1000), UniformSpec(bits=4))
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch

from netpress.quantize.affine import fake_quantize, qparams
from netpress.registry import Registry

Calibrator = Callable[[torch.Tensor, "object"], tuple[torch.Tensor, torch.Tensor]]
CALIBRATORS: Registry[Calibrator] = Registry("calibration")
MSE_CHUNK = 1 << 17  # values per block of rows in the MSE range search


@CALIBRATORS.register("minmax")
def minmax(x2d: torch.Tensor, spec) -> tuple[torch.Tensor, torch.Tensor]:
    """The tight range: each slice's min and max."""
    return x2d.amin(dim=1), x2d.amax(dim=1)


@CALIBRATORS.register("percentile")
def percentile(x2d: torch.Tensor, spec) -> tuple[torch.Tensor, torch.Tensor]:
    """[q(100 - p), q(p)] percentiles of each slice (``spec.percentile``, e.g. 99.99)."""
    p = spec.percentile / 100.0
    q = torch.quantile(x2d.double(), torch.tensor([1 - p, p], dtype=torch.float64), dim=1)
    return q[0].float(), q[1].float()


@CALIBRATORS.register("mse")
def mse(x2d: torch.Tensor, spec, grid: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipping fraction (of the min-max range) minimising each slice's fake-quantization MSE.

    Slices are searched ``MSE_CHUNK`` values' worth of rows at a time (the search is per row, so the result is
    the same; the temporaries stay a few chunks in size and in cache).
    """
    rows = max(1, MSE_CHUNK // max(x2d.shape[1], 1))
    if x2d.shape[0] <= rows:
        return _mse_rows(x2d, spec, grid)
    parts = [_mse_rows(x2d[i:i + rows], spec, grid) for i in range(0, x2d.shape[0], rows)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _mse_rows(x2d: torch.Tensor, spec, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    lo0, hi0 = minmax(x2d, spec)
    best = torch.full_like(lo0, float("inf"))
    best_lo, best_hi = lo0.clone(), hi0.clone()
    for frac in torch.linspace(1.0, 0.2, grid).tolist():
        lo, hi = lo0 * frac, hi0 * frac
        scale, zp = qparams(lo, hi, spec)
        err = (fake_quantize(x2d, scale[:, None], zp[:, None], spec.qmin, spec.qmax) - x2d).pow(2).mean(dim=1)
        better = err < best
        best = torch.where(better, err, best)
        best_lo, best_hi = torch.where(better, lo, best_lo), torch.where(better, hi, best_hi)
    return best_lo, best_hi


@CALIBRATORS.register("aciq_laplace")
def aciq_laplace(x2d: torch.Tensor, spec) -> tuple[torch.Tensor, torch.Tensor]:
    """ACIQ for Laplace(b): alpha = c(bits) * b, b = mean |x - mu|."""
    center = _center(x2d, spec)
    b = (x2d - center[:, None]).abs().mean(dim=1)
    return _clip_around(x2d, center, aciq_factor("laplace", spec.bits) * b)


@CALIBRATORS.register("aciq_gaussian")
def aciq_gaussian(x2d: torch.Tensor, spec) -> tuple[torch.Tensor, torch.Tensor]:
    """ACIQ for N(mu, sigma^2): alpha = c(bits) * sigma."""
    center = _center(x2d, spec)
    sigma = (x2d - center[:, None]).pow(2).mean(dim=1).sqrt()
    return _clip_around(x2d, center, aciq_factor("gaussian", spec.bits) * sigma)


def _center(x2d: torch.Tensor, spec) -> torch.Tensor:
    return torch.zeros(x2d.shape[0], dtype=x2d.dtype) if spec.symmetric else x2d.mean(dim=1)


def _clip_around(x2d: torch.Tensor, center: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lo0, hi0 = minmax(x2d, None)
    return torch.maximum(center - alpha, lo0), torch.minimum(center + alpha, hi0)


@functools.lru_cache(maxsize=None)
def aciq_factor(dist: str, bits: int) -> float:
    """alpha / (Laplace b or Gaussian sigma) minimising clip noise + alpha^2 / (3 * 4**bits) (Banner et al. 2019).

    Args:
        dist: ``laplace`` or ``gaussian``.
        bits: bit width.

    Returns:
        The optimal clipping factor, e.g. about 9.89 for Laplace at 8 bits, 2.55 for Gaussian at 4 bits.

    Example:
        >>> round(aciq_factor("laplace", 4), 2)
        5.03
    """
    a = np.linspace(0.05, 40.0, 400_001)
    rounding = a ** 2 / (3.0 * 4.0 ** bits)
    if dist == "laplace":
        clipping = 2.0 * np.exp(-a)
    else:
        tail = 0.5 * np.array([math.erfc(v / math.sqrt(2)) for v in a[::100]])
        tail = np.interp(a, a[::100], tail)
        pdf = np.exp(-a ** 2 / 2) / math.sqrt(2 * math.pi)
        clipping = 2.0 * ((1 + a ** 2) * tail - a * pdf)
    return float(a[np.argmin(clipping + rounding)])
