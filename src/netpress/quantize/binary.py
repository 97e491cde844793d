"""Binary (XNOR-Net: sign with a per-channel scale) and ternary (TWN) weights, trained with the STE.

The float weights stay the trained parameters; the forward uses the binarized / ternarized values (exactly
``codes(w).decode()``) and the gradient passes straight through where ``|w| <= clip`` (clipped STE).
Exact zeros (pruned weights) are kept at zero and exported with index -1.

Example:
    >>> binarize(net); train(net, data, TrainingHparams(steps="2ep")); export_codes(net)["fc1.weight"].bits
    1
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from netpress.quantize.base import WeightQuantizer, check_finite, quantizer_of, remove_quantizer, selected_tensors
from netpress.quantize.codes import PRUNED, Codes


class GatedSTE(torch.autograd.Function):
    """``apply(w, value, gate)``: the value ``value`` exactly; the gradient reaches ``w`` where ``gate`` is set."""

    @staticmethod
    def forward(ctx, w, value, gate):
        ctx.save_for_backward(gate)
        return value

    @staticmethod
    def backward(ctx, g):
        (gate,) = ctx.saved_tensors
        return g * gate, None, None


def _per_channel_mean(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ``keep`` positions, per output channel (axis 0), as ``[C]``."""
    flat, k = x.reshape(x.shape[0], -1), keep.reshape(x.shape[0], -1).float()
    return (flat * k).sum(1) / k.sum(1).clamp_min(1)


class BinaryWeight(WeightQuantizer):
    """w -> alpha_c * sign(w), alpha_c = mean |w| of channel c (nonzero weights), codes ``[C, 2]`` on axis 0.

    Args:
        clip: the STE passes gradients where ``|w| <= clip * max|w|`` of the channel (1.0: everywhere).
    """

    def __init__(self, clip: float = 1.0):
        super().__init__()
        self.clip = clip

    def codes(self, w: torch.Tensor) -> Codes:
        w = w.detach()
        alive = w != 0
        alpha = _per_channel_mean(w.abs(), alive)
        indices = (w > 0).to(torch.int64).masked_fill(~alive, PRUNED)
        return Codes(indices, torch.stack([-alpha, alpha], dim=1).float(), 1, 0, "binary")

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return GatedSTE.apply(w, self.codes(w).decode().to(w.dtype), _gate(w, self.clip))


class TernaryWeight(WeightQuantizer):
    """TWN: threshold delta_c = ``threshold`` * mean |w_c|; w -> {-alpha_c, 0, +alpha_c}, alpha_c = mean |w| above
    delta_c; codes ``[C, 3]`` on axis 0 (2 bits)."""

    def __init__(self, threshold: float = 0.7, clip: float = 1.0):
        super().__init__()
        self.threshold, self.clip = threshold, clip

    def codes(self, w: torch.Tensor) -> Codes:
        w = w.detach()
        alive = w != 0
        delta = self.threshold * _per_channel_mean(w.abs(), alive)
        delta = delta.reshape(-1, *([1] * (w.dim() - 1)))
        big = w.abs() > delta
        alpha = _per_channel_mean(w.abs(), big)
        indices = torch.where(w > delta, 2, torch.where(w < -delta, 0, 1)).to(torch.int64).masked_fill(~alive, PRUNED)
        book = torch.stack([-alpha, torch.zeros_like(alpha), alpha], dim=1).float()
        return Codes(indices, book, 2, 0, "ternary")

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return GatedSTE.apply(w, self.codes(w).decode().to(w.dtype), _gate(w, self.clip))


def _gate(w: torch.Tensor, clip: float) -> torch.Tensor:
    if clip >= 1.0:
        return torch.ones_like(w)
    limit = clip * w.detach().abs().reshape(w.shape[0], -1).amax(1).reshape(-1, *([1] * (w.dim() - 1)))
    return (w.detach().abs() <= limit).to(w.dtype)


def _attach_all(model: nn.Module, make, names, exclude) -> nn.Module:
    tensors = selected_tensors(model, names, exclude)
    for name, (m, a) in tensors.items():
        check_finite(name, getattr(m, a).detach())
    for module, attr in tensors.values():
        if quantizer_of(module, attr) is not None:
            remove_quantizer(module, attr)
        parametrize.register_parametrization(module, attr, make())
    return model


def binarize(model: nn.Module, *, names: Iterable[str] | None = None, exclude: Iterable[str] = (),
             clip: float = 1.0) -> nn.Module:
    """Binary weights (XNOR-Net style) on every Linear/Conv weight; train with the STE afterwards.

    Args:
        model: changed in place.
        names: plain names (default: Linear/Conv weights).
        exclude: plain names to keep in float (often the first and last layer).
        clip: clipped-STE fraction of each channel's max |w| (1.0 = plain STE).

    Returns:
        ``model``.

    Example:
        >>> binarize(net, exclude=["fc_out.weight"])
    """
    return _attach_all(model, lambda: BinaryWeight(clip), names, exclude)


def ternarize(model: nn.Module, *, names: Iterable[str] | None = None, exclude: Iterable[str] = (),
              threshold: float = 0.7, clip: float = 1.0) -> nn.Module:
    """Ternary weights (TWN, threshold 0.7 * mean |w| per channel); train with the STE afterwards.

    Example:
        >>> ternarize(net)
    """
    return _attach_all(model, lambda: TernaryWeight(threshold, clip), names, exclude)
