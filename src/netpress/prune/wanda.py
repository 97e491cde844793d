"""Wanda (Sun et al. 2023): one-shot pruning by ``|W_ij| * ||X_j||_2``, compared within each output row.

No weight update and no Hessian: only the L2 norm of each input feature over the calibration rows (tokens,
positions or im2col patches, see :mod:`netpress.calibrate.stats`). Unstructured (the lowest ``sparsity`` of each
row) or N:M (the ``n`` largest of every ``m`` consecutive inputs of each row are kept: 2:4, 4:8).

Example:
    >>> mask = wanda_mask(fc.weight, stats.sq_norms, WandaHparams(sparsity=0.5))
    >>> apply_masks(net, {"fc.weight": mask})
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require


@dataclasses.dataclass(frozen=True)
class WandaHparams(Hparams):
    """Wanda options.

    Attributes:
        sparsity: fraction of each row's weights pruned (unstructured; ignored for N:M, which prunes 1 - n/m).
        n: weights kept per group of ``m`` (N:M); 0 = unstructured.
        m: N:M group length along the inputs.
    """

    sparsity: float = 0.5
    n: int = 0
    m: int = 0

    def validate(self) -> None:
        check_pattern(self.sparsity, self.n, self.m)


def check_pattern(sparsity: float, n: int, m: int) -> None:
    """Raise :class:`ConfigError` unless ``0 <= sparsity < 1`` and N:M is off (0:0) or ``0 < n < m``."""
    require(0 <= sparsity < 1, f"sparsity must be a fraction in [0, 1), got {sparsity}")
    require((n, m) == (0, 0) or 0 < n < m, f"N:M needs 0 < n < m (e.g. n=2, m=4), got n={n}, m={m}")


def check_cols(name: str, cols: int, m: int) -> None:
    """Raise :class:`ConfigError` if N:M groups of ``m`` do not tile ``cols`` inputs."""
    if m and cols % m:
        raise ConfigError(f"{name}: {cols} inputs per row are not a multiple of the N:M group length {m}")


def row_keep(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep mask pruning the ``floor(sparsity * cols)`` lowest scores of each row (ties: lower index pruned).

    Example:
        >>> row_keep(torch.tensor([[3., 1., 2., 0.]]), 0.5)
        tensor([[ True, False,  True, False]])
    """
    k = int(sparsity * scores.shape[1])
    keep = torch.ones_like(scores, dtype=torch.bool)
    if k:
        order = torch.sort(scores, dim=1, stable=True).indices[:, :k]
        keep.scatter_(1, order, False)
    return keep


def nm_keep(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep mask with exactly ``n`` kept in every ``m`` consecutive columns of each row (the largest scores).

    Example:
        >>> nm_keep(torch.tensor([[1., 4., 3., 2.]]), 2, 4)
        tensor([[False,  True,  True, False]])
    """
    rows, cols = scores.shape
    groups = scores.reshape(rows, cols // m, m)
    drop = torch.sort(groups, dim=2, stable=True).indices[..., :m - n]
    keep = torch.ones_like(groups, dtype=torch.bool)
    keep.scatter_(2, drop, False)
    return keep.reshape(rows, cols)


def wanda_scores(w: torch.Tensor, sq_norms: torch.Tensor) -> torch.Tensor:
    """``|W_ij| * ||X_j||_2`` on the ``[out, in]`` matrix view of ``w`` (Conv: im2col column order)."""
    mat = w.detach().reshape(w.shape[0], -1).float()
    return mat.abs() * sq_norms.float().sqrt().to(mat.device)[None, :]


def wanda_mask(w: torch.Tensor, sq_norms: torch.Tensor, hp: WandaHparams = WandaHparams(),
               name: str = "weight") -> torch.Tensor:
    """The Wanda keep mask (float 0/1, ``w``'s shape); weights that are already zero are pruned first.

    Args:
        w: a Linear/Conv weight.
        sq_norms: ``||X_j||^2`` per input column (``InputStats.sq_norms``).
        hp: sparsity or N:M pattern.
        name: for messages.

    Returns:
        0/1 mask of ``w``'s shape, for :func:`netpress.prune.masks.apply_masks`.

    Example:
        >>> wanda_mask(fc.weight, stats.sq_norms, WandaHparams(n=2, m=4)).mean()
        tensor(0.5000)
    """
    cols = w[0].numel()
    check_cols(name, cols, hp.m)
    if sq_norms.numel() != cols:
        raise ConfigError(f"{name}: {sq_norms.numel()} input norms for {cols} inputs per row")
    scores = wanda_scores(w, sq_norms)
    keep = nm_keep(scores, hp.n, hp.m) if hp.m else row_keep(scores, hp.sparsity)
    return (keep & (w.detach().reshape(scores.shape) != 0)).reshape(w.shape).float()


@torch.no_grad()
def wanda_module(module: nn.Module, sq_norms: torch.Tensor, hp: WandaHparams = WandaHparams(),
                 attr: str = "weight", name: str = "weight") -> dict:
    """Prune ``module.attr`` in place with Wanda through the one mask mechanism.

    Returns:
        A report: ``sparsity`` of the tensor after pruning.

    Example:
        >>> wanda_module(net.fc1, stats.sq_norms, WandaHparams(sparsity=0.5))
        {'sparsity': 0.5}
    """
    from netpress.prune.masks import apply_masks

    mask = wanda_mask(getattr(module, attr), sq_norms, hp, name)
    apply_masks(module, {attr: mask})
    return {"sparsity": 1 - float(mask.mean())}
