"""Activation-aware weight scaling (AWQ, Lin et al. 2024): the scale search of one group of layers.

Layers that read the same input ``X`` share one per-input-channel scale ``s``: their weights become ``W diag(s)``
and the producer of ``X`` divides its output by ``s`` (done by :mod:`netpress.calibrate.awq`), which leaves the
model's function unchanged while the quantization grid of the scaled weights gives the input channels with large
activations (salient weights) a finer effective step. ``s = rms(X)^alpha``, with ``alpha`` chosen on a grid by the
output error ``tr(E H E^T)`` of round-to-nearest on the layers' own grids (``alpha = 0``, no scaling, is on the
grid, so the chosen scale is never worse by this measure).

Example:
    >>> s, report = search_scales([q.weight, k.weight, v.weight], hessian, rms, [GPTQHparams(bits=4)] * 3)
"""
from __future__ import annotations

import torch

from netpress.quantize.gptq import GPTQHparams, gptq_codes, output_error


def rounded(w: torch.Tensor, scale: torch.Tensor, hp: GPTQHparams) -> torch.Tensor:
    """``Q(w diag(s)) diag(s)^-1``: round-to-nearest on ``hp``'s grid of the scaled weight, scaled back."""
    fast = hp.replace(clip_grid=1, act_order=False)
    return gptq_codes(w * scale, None, fast).decode() / scale


def search_scales(weights: list[torch.Tensor], hessian: torch.Tensor, rms: torch.Tensor, hps: list[GPTQHparams],
                  grid: int = 20) -> tuple[torch.Tensor, dict]:
    """The input-channel scale of a group of ``[out, in]`` weights sharing one input.

    Args:
        weights: the group's weight matrices (same number of inputs).
        hessian: ``[in, in]`` ``2 X^T X / n`` of the shared input.
        rms: ``[in]`` root mean square of each input channel.
        hps: each weight's grid (bits, granularity, group size, step), as it will be quantized.
        grid: ``alpha`` values tried, evenly from 0 to 1.

    Returns:
        ``(scale, report)``: ``scale`` ``[in]`` (all ones if no ``alpha > 0`` lowers the error), ``report`` with
        ``alpha``, ``error`` and ``error_unscaled`` (summed ``tr(E H E^T)``).

    Example:
        >>> scale, report = search_scales([fc.weight], h, rms, [GPTQHparams(bits=3)])
    """
    h = hessian.float()
    base = rms.float().clamp_min(1e-8)
    best = (float("inf"), 0.0, torch.ones_like(base))
    unscaled = None
    for alpha in torch.linspace(0, 1, max(grid, 2)).tolist():
        s = base ** alpha
        s = (s / (s.max() * s.min()).sqrt()).clamp_min(1e-4)
        err = sum(output_error(w.float(), rounded(w.float(), s, hp), h) for w, hp in zip(weights, hps))
        unscaled = err if unscaled is None else unscaled
        if err < best[0]:
            best = (err, alpha, s)
    return best[2], {"alpha": best[1], "error": best[0], "error_unscaled": unscaled}


__all__ = ["rounded", "search_scales"]
