"""Quant-Noise (Fan et al. 2020): quantize a random fraction of the weights at each training step.

In training mode a :class:`QuantNoiseWeight` fake-quantizes a random subset of blocks (each block quantized
with probability ``p``) with the straight-through estimator and leaves the rest in float, so the network learns
to tolerate quantization while most gradients stay unbiased; in eval mode every weight is quantized, and the
result equals the exported :class:`~netpress.quantize.Codes` (uniform, per tensor or per channel).

Example:
    >>> quant_noise(net, p=0.5, spec=UniformSpec(bits=4), block_size=8)
    >>> train(net, data, TrainingHparams(steps="2ep")); net.eval()   # eval: fully quantized
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from netpress.errors import ConfigError
from netpress.quantize.base import WeightQuantizer, quantizer_of, remove_quantizer, selected_tensors
from netpress.quantize.codes import Codes
from netpress.quantize.uniform import (STEFakeQuantize, UniformSpec, calibrate, check_tensor, expand,
                                       uniform_codes)


class QuantNoiseWeight(WeightQuantizer):
    """Fake-quantize a random fraction ``p`` of blocks in training (STE), every weight in eval.

    Blocks are ``block_size`` consecutive weights of the flattened tensor (``block_size`` must divide its size);
    ``block_size=1`` is element-wise noise. The quantizer's range is re-calibrated from the weight each forward.

    Args:
        spec: the uniform quantizer (``tensor`` or ``channel`` granularity).
        p: probability that a block is quantized in a training step, in [0, 1].
        block_size: weights per block.
        generator: optional random generator (reproducible masks).
    """

    def __init__(self, spec: UniformSpec, p: float, block_size: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"p must be in [0, 1], got {p}")
        if block_size < 1:
            raise ConfigError(f"block_size must be >= 1, got {block_size}")
        if spec.granularity == "group":
            raise ConfigError("quant-noise supports tensor or channel granularity, not group")
        self.spec, self.p, self.block_size, self.generator = spec, float(p), block_size, generator

    def quantized(self, w: torch.Tensor) -> torch.Tensor:
        """Every weight fake-quantized, identity gradient (unclipped STE)."""
        with torch.no_grad():
            scale, zp = calibrate(w, self.spec)
        s, z = expand(scale, w, self.spec), expand(zp, w, self.spec)
        return STEFakeQuantize.apply(w, s, z, self.spec.qmin, self.spec.qmax, False)

    def noise_mask(self, w: torch.Tensor) -> torch.Tensor:
        """A fresh 0/1 mask of ``w``'s shape: whole blocks set with probability ``p``."""
        blocks = w.numel() // self.block_size
        draw = torch.rand(blocks, generator=self.generator, device="cpu") < self.p
        return draw.repeat_interleave(self.block_size).reshape(w.shape).to(device=w.device, dtype=w.dtype)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        q = self.quantized(w)
        if not self.training or self.p == 1.0:
            return q
        if self.p == 0.0:
            return w
        return w + self.noise_mask(w) * (q - w)

    def codes(self, w: torch.Tensor) -> Codes:
        scale, zp = calibrate(w, self.spec)
        return uniform_codes(w.detach(), scale, zp, self.spec)


def quant_noise(model: nn.Module, p: float, spec: UniformSpec = UniformSpec(bits=8), *, block_size: int = 1,
                names: Iterable[str] | None = None, exclude: Iterable[str] = (), seed: int | None = None
                ) -> nn.Module:
    """Attach :class:`QuantNoiseWeight` to each selected weight (on top of any pruning mask).

    Args:
        model: any module, changed in place.
        p: fraction of blocks quantized per training step, in [0, 1].
        spec: the uniform quantizer.
        block_size: weights per noise block; must divide each selected tensor's size.
        names: plain names (default: every Linear/Conv weight).
        exclude: plain names to leave alone.
        seed: seed of the masks' generator (default: torch's global generator).

    Returns:
        ``model``; :func:`~netpress.quantize.export_codes` gives uniform codes, and
        :func:`~netpress.quantize.strip_quantization` (in eval) freezes fully quantized weights.

    Raises:
        ConfigError: ``p`` outside [0, 1], bad ``block_size``, group granularity, NaN/Inf weights; before any change.

    Example:
        >>> quant_noise(net, p=0.1, spec=UniformSpec(bits=4, granularity="channel"), block_size=4)
    """
    tensors = selected_tensors(model, names, exclude)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    quantizers = {}
    for name, (m, a) in tensors.items():
        w = getattr(m, a).detach()
        check_tensor(name, w, spec)
        if block_size < 1 or w.numel() % block_size:
            raise ConfigError(f"{name}: block_size {block_size} does not divide its {w.numel()} weights")
        quantizers[name] = QuantNoiseWeight(spec, p, block_size, generator)
    for name, (module, attr) in tensors.items():
        if quantizer_of(module, attr) is not None:
            remove_quantizer(module, attr)
        parametrize.register_parametrization(module, attr, quantizers[name])
    return model
