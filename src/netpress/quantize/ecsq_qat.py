"""Quantization-aware training under entropy-constrained levels (ECSQ): the forward pass uses each nonzero
weight's ECSQ level, ``argmin_k (w - c_k)^2 + lam * -log2 p_k``, and the gradient passes straight through to the
float weights (STE), so the network learns weights that survive an aggressive rate weight. The levels and their
probabilities are re-solved on the current float weights every so many steps (:class:`RefitLevels`). Pruned zeros
stay zero and get no gradient. Afterwards :func:`finish_qat` leaves plain float weights for the final rounding
(:func:`~netpress.quantize.ecsq.ecsq_weights`, or the calibrated GPTQ-style one) and its centroid fine-tune.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from netpress.errors import ConfigError
from netpress.quantize.base import WeightQuantizer, bits_per_tensor, quantized_tensors, selected_tensors
from netpress.quantize.binary import GatedSTE
from netpress.quantize.codes import PRUNED, Codes, index_dtype
from netpress.quantize.ecsq import _check, _nonzero_variance, compact_levels, ecsq, ecsq_assign, nonzero_values


class ECSQTrainWeight(WeightQuantizer):
    """STE parametrization: the value is each nonzero weight's ECSQ level (zeros stay zero); gradients reach the
    float weights unchanged at nonzero positions and not at all at pruned ones.

    Args:
        w: the float weight entering training; its zeros are the fixed pruned positions.
        bits: at most ``2**bits`` levels.
        lam: absolute rate weight (squared weight units per bit), >= 0.
    """

    def __init__(self, w: torch.Tensor, bits: int, lam: float):
        super().__init__()
        _check(bits, lam, 1)
        self.bits, self.lam = bits, float(lam)
        self.register_buffer("mask", w.detach() != 0)
        self.register_buffer("levels", torch.zeros(1 << bits, device=w.device))
        self.register_buffer("probs", torch.zeros(1 << bits, device=w.device))
        self.refit(w)

    @torch.no_grad()
    def refit(self, w: torch.Tensor) -> None:
        """Re-solve the levels and their probabilities (ECSQ) on the nonzero entries of ``w``."""
        result = ecsq(w.detach()[self.mask], self.bits, self.lam)
        self.levels.copy_(result.centroids.to(self.levels))
        self.probs.copy_(result.probs.to(self.probs))

    def labels(self, w: torch.Tensor) -> torch.Tensor:
        """The level of each entry of ``w`` (``PRUNED`` at pruned positions), among the levels in use."""
        used = torch.nonzero(self.probs > 0).reshape(-1)
        labels = used[ecsq_assign(w, self.levels[used], self.probs[used], self.lam).to(used.device)]
        return torch.where(self.mask, labels, torch.full_like(labels, PRUNED))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        q = torch.where(self.mask, self.levels.to(w.dtype)[self.labels(w).clamp_min(0)], torch.zeros_like(w))
        return GatedSTE.apply(w, q, self.mask)

    def codes(self, w: torch.Tensor) -> Codes:
        labels, used = compact_levels(self.labels(w), 1 << self.bits)
        return Codes(labels.to(index_dtype(self.bits)), self.levels[used].detach().clone().float(), self.bits,
                     None, "ecsq")


def ecsq_qat(model: nn.Module, bits: int | dict[str, int], lam: float, *, names: Iterable[str] | None = None,
             exclude: Iterable[str] = (), relative: bool = False) -> nn.Module:
    """Attach :class:`ECSQTrainWeight` to each selected weight; then train the model normally.

    Args:
        model: any module, changed in place (pruning masks are stripped first; their zeros stay zero).
        bits: bits per index, or ``{plain_name: bits}``.
        lam: rate weight >= 0; with ``relative`` a multiple of each tensor's nonzero-weight variance (fixed at
            attach time), as in :func:`~netpress.quantize.ecsq.ecsq_weights`.
        names: plain names to quantize (default: every Linear/Conv weight).
        exclude: plain names to leave alone.
        relative: scale ``lam`` per tensor.

    Returns:
        ``model``.

    Raises:
        ConfigError: bad bits/lam, an unknown name, NaN/Inf or all-zero weights, or a tensor already
            quantized; before any change.

    Example:
        >>> net = ecsq_qat(pruned_net, bits=5, lam=0.1, relative=True)
        >>> train(net, data, hp, callbacks=[RefitLevels(every=430)]); finish_qat(net)
    """
    from netpress.prune.masks import is_masked, strip
    from netpress.quantize.base import quantizer_of

    tensors = selected_tensors(model, names, exclude)
    per_tensor = bits_per_tensor(bits, tensors)
    _check(1, lam, 1)
    values = nonzero_values(tensors)
    for name, (module, attr) in tensors.items():
        if quantizer_of(module, attr) is not None:
            raise ConfigError(f"{name} is already quantized; quantization-aware training starts from float weights")
    if is_masked(model):
        strip(model)
    for name, (module, attr) in tensors.items():
        w = values[name]
        scaled = lam * _nonzero_variance(w) if relative else lam
        parametrize.register_parametrization(module, attr, ECSQTrainWeight(w, per_tensor[name], scaled))
    return model


def refit_levels(model: nn.Module) -> int:
    """Re-solve every :class:`ECSQTrainWeight`'s levels on its current float weights.

    Returns:
        How many quantizers were refitted.
    """
    found = [(m, attr, q) for m, attr, q, _ in quantized_tensors(model).values() if isinstance(q, ECSQTrainWeight)]
    for module, attr, quantizer in found:
        quantizer.refit(module.parametrizations[attr].original)
    return len(found)


class RefitLevels:
    """Training callback: :func:`refit_levels` after every ``every``-th optimizer step (a function of the
    iteration only, so a resumed run refits at the same steps).

    Args:
        every: iterations between refits, >= 1 (e.g. one epoch's).
    """

    def __init__(self, every: int):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"every must be an integer >= 1, got {every!r}")
        self.every = every

    def on_step_end(self, iteration: int, model: nn.Module, optimizer) -> None:
        if iteration % self.every == 0:
            refit_levels(model)


@torch.no_grad()
def finish_qat(model: nn.Module) -> list[str]:
    """Remove every :class:`ECSQTrainWeight`, leaving its float weights (exactly zero at pruned positions).

    Returns:
        The plain names of the weights left in float.
    """
    done = []
    for name, (module, attr, quantizer, _) in quantized_tensors(model).items():
        if not isinstance(quantizer, ECSQTrainWeight):
            continue
        if len(module.parametrizations[attr]) != 1:
            raise ConfigError(f"{name}: another parametrization sits on the ECSQ training quantizer")
        w = module.parametrizations[attr].original.detach() * quantizer.mask
        parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
        getattr(module, attr).copy_(w)
        done.append(name)
    return done
