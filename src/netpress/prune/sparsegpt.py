"""SparseGPT (Frantar & Alistarh 2023): one-shot pruning with the OBS weight update, blocked.

The columns of ``W`` are swept in order (the GPTQ sweep, :func:`netpress.quantize.gptq.obs_sweep`); at the start
of each block of ``blocksize`` columns the block's mask is chosen by the OBS saliency ``w^2 / [U]_jj^2``
(unstructured: the lowest ``sparsity`` of the block; N:M: the ``m - n`` lowest of every ``m`` consecutive
inputs of each row), pruned weights are set to zero and their error is compensated on the remaining columns
(for a single weight ``q`` this is the closed form ``delta = -w_q / [H^-1]_qq * H^-1[:, q]``). With ``quantize``
the kept weights are also rounded in the same sweep (joint sparsification and quantization, as in the paper).

The updated weights are written into the original parameter and the mask is applied with
:func:`netpress.prune.masks.apply_masks`.

Example:
    >>> sparsegpt_module(net.fc1, stats.hessian, SparseGPTHparams(n=2, m=4))
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.prune.wanda import check_cols, check_pattern, nm_keep
from netpress.quantize.gptq import GPTQHparams, Rounder, UniformRounder, attach_codes, check_weight, obs_sweep


@dataclasses.dataclass(frozen=True)
class SparseGPTHparams(Hparams):
    """SparseGPT options.

    Attributes:
        sparsity: fraction pruned per block (unstructured; ignored for N:M).
        n: weights kept per ``m`` consecutive inputs (N:M); 0 = unstructured.
        m: N:M group length; must divide ``blocksize``.
        blocksize: columns per block (mask selection and lazy updates).
        percdamp: damping fraction of the Hessian's mean diagonal.
    """

    sparsity: float = 0.5
    n: int = 0
    m: int = 0
    blocksize: int = 128
    percdamp: float = 0.01

    def validate(self) -> None:
        check_pattern(self.sparsity, self.n, self.m)
        require(self.blocksize >= 1, f"blocksize must be >= 1, got {self.blocksize}")
        require(not self.m or self.blocksize % self.m == 0,
                f"blocksize {self.blocksize} must be a multiple of the N:M group length {self.m}")
        require(0 <= self.percdamp < 10, f"percdamp must be in [0, 10), got {self.percdamp}")


class PruneRounder(Rounder):
    """Per-block OBS mask selection; pruned weights become 0, kept ones pass through ``then`` (or stay)."""

    def __init__(self, hp: SparseGPTHparams, keep: torch.Tensor, then: Rounder | None = None):
        self.hp, self.alive, self.then = hp, keep, then
        self.keep = torch.ones_like(keep)

    def block(self, i1: int, i2: int, w: torch.Tensor, d: torch.Tensor) -> None:
        saliency = w[:, i1:i2] ** 2 / d[None, :] ** 2
        saliency = saliency.masked_fill(~self.alive[:, i1:i2], -1.0)
        if self.hp.m:
            keep = nm_keep(saliency, self.hp.n, self.hp.m)
        else:
            keep = torch.ones_like(saliency, dtype=torch.bool).reshape(-1)
            k = int(self.hp.sparsity * saliency.numel())
            keep[torch.sort(saliency.reshape(-1), stable=True).indices[:k]] = False
            keep = keep.reshape(saliency.shape)
        self.keep[:, i1:i2] = keep & self.alive[:, i1:i2]
        if self.then is not None:
            self.then.block(i1, i2, w, d)

    def column(self, j: int, w: torch.Tensor) -> torch.Tensor:
        q = w[:, j] if self.then is None else self.then.column(j, w)
        return q * self.keep[:, j]


def sparsegpt_weight(w: torch.Tensor, hessian: torch.Tensor, hp: SparseGPTHparams = SparseGPTHparams(),
                     quantize: GPTQHparams | None = None, name: str = "weight"):
    """Prune (and optionally quantize) one weight with SparseGPT.

    Args:
        w: Linear ``[out, in]`` or Conv weight (im2col column order); exact zeros stay pruned.
        hessian: ``2 X^T X / n`` ``[in, in]``; the sweep runs in its dtype.
        hp: sparsity or N:M pattern.
        quantize: also round kept weights on this GPTQ grid (uniform only, natural column order).
        name: for messages.

    Returns:
        ``(new_weight, keep_mask, rounder)``: updated weights (``w``'s shape and dtype), 0/1 mask, and the
        quantizing rounder (None without ``quantize``) for :meth:`UniformRounder.codes`.

    Example:
        >>> new_w, mask, _ = sparsegpt_weight(fc.weight, h, SparseGPTHparams(sparsity=0.5))
    """
    mat = w.detach().reshape(w.shape[0], -1)
    check_cols(name, mat.shape[1], hp.m)
    if quantize is not None:
        check_weight(name, w, quantize)
        if quantize.method != "uniform" or quantize.act_order:
            raise ConfigError("joint SparseGPT + quantization needs method='uniform' and act_order=False")
    alive = mat != 0
    then = None if quantize is None else UniformRounder(mat.to(hessian.dtype), hessian, quantize, alive)
    rounder = PruneRounder(hp, alive, then)
    q = obs_sweep(mat, hessian, rounder, blocksize=hp.blocksize, percdamp=hp.percdamp)
    keep = rounder.keep & alive
    return q.to(w.dtype).reshape(w.shape), keep.reshape(w.shape).to(w.dtype), then


@torch.no_grad()
def sparsegpt_module(module: nn.Module, hessian: torch.Tensor, hp: SparseGPTHparams = SparseGPTHparams(),
                     quantize: GPTQHparams | None = None, attr: str = "weight", name: str = "weight") -> dict:
    """SparseGPT on ``module.attr`` in place: updated weights into the original parameter, then the mask
    (:func:`~netpress.prune.masks.apply_masks`), then (``quantize``) frozen uniform codes on top.

    Returns:
        A report: ``sparsity`` of the tensor.

    Raises:
        ConfigError: the tensor is already quantized (prune first), or a bad pattern for its shape.

    Example:
        >>> sparsegpt_module(net.fc1, stats.hessian, SparseGPTHparams(n=2, m=4), GPTQHparams(bits=4))
    """
    from netpress.prune.masks import apply_masks
    from netpress.quantize.base import quantizer_of

    if quantizer_of(module, attr) is not None:
        raise ConfigError(f"{name} is already quantized; prune before quantizing")
    new_w, mask, then = sparsegpt_weight(getattr(module, attr), hessian, hp, quantize, name)
    masked = hasattr(module, "parametrizations") and attr in module.parametrizations
    target = module.parametrizations[attr].original if masked else getattr(module, attr)
    target.copy_(new_w)
    apply_masks(module, {attr: mask})
    if then is not None:
        attach_codes(module, attr, then.codes(new_w.reshape(new_w.shape[0], -1), new_w.shape))
    return {"sparsity": 1 - float(mask.float().mean())}
