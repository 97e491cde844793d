"""The masks of a lottery experiment: IMP levels, one-shot pruning, random masks; and sparsity bookkeeping.

All pruning goes through :func:`netpress.prune.compute_masks` (magnitude score); masks are applied with
:func:`netpress.prune.apply_masks`.
"""
from __future__ import annotations

import torch
from torch import nn

from netpress.lottery.hparams import LotteryHparams
from netpress.prune import compute_masks, prunable_tensors


def output_layer(model: nn.Module) -> str:
    """Plain name of the output layer: the last prunable tensor in model order.

    Args:
        model: any module with Linear/Conv layers.

    Returns:
        e.g. ``'fc_out.weight'``.

    Example:
        >>> output_layer(build_model("lenet300", (1, 28, 28), 10))
        'fc_out.weight'
    """
    return list(prunable_tensors(model))[-1]


def level_masks(model: nn.Module, hp: LotteryHparams, level: int) -> dict[str, torch.Tensor]:
    """Masks of IMP level ``level`` from a trained ``model`` (masked with level ``level - 1`` or dense).

    Hidden layers reach sparsity ``1 - (1 - p)^level`` (over all of them for ``global`` scope, each for
    ``local``); the output layer ``1 - (1 - q)^level`` on its own. Already pruned weights stay pruned, so
    calling this on the dense trained net gives one-shot pruning to the same sparsity.

    Args:
        model: the trained network whose weight magnitudes rank survivors.
        hp: lottery settings (fractions, scope).
        level: the level whose masks to compute (>= 1).

    Returns:
        ``{plain_name: 0/1 mask}`` for every prunable tensor.

    Example:
        >>> masks = level_masks(trained, LotteryHparams(prune_fraction=0.2), level=3)  # keeps 51.2%
    """
    out_name = output_layer(model)
    return compute_masks(model, 1 - hp.density(level), score="magnitude", scope=hp.scope,
                         layer_sparsity={out_name: 1 - hp.density(level, output=True)})


def random_masks(masks: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Masks with the same number of survivors per tensor as ``masks`` at uniformly random positions.

    Args:
        masks: reference masks ``{name: 0/1 tensor}``.
        seed: seed of the positions.

    Returns:
        New masks, same shapes, dtypes and per-tensor counts.

    Example:
        >>> random_masks({"fc.weight": torch.tensor([1., 0., 1.])}, seed=0)["fc.weight"].sum()
        tensor(2.)
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, m in masks.items():
        keep = int(m.sum().item())
        flat = torch.zeros(m.numel(), dtype=m.dtype)
        flat[torch.randperm(m.numel(), generator=g)[:keep]] = 1
        out[name] = flat.reshape(m.shape)
    return out


def mask_sparsity(masks: dict[str, torch.Tensor], shapes: dict[str, int] | None = None) -> dict:
    """Sparsity per layer and in total (fraction of zeros) and the fraction of weights remaining.

    Args:
        masks: ``{name: 0/1 mask}``.
        shapes: ``{name: numel}`` of unmasked prunable tensors to count as dense (optional).

    Returns:
        ``{"layers": {name: sparsity}, "sparsity": total, "remaining": 1 - total}``.

    Example:
        >>> mask_sparsity({"fc.weight": torch.tensor([1., 0., 0., 1.])})["sparsity"]
        0.5
    """
    layers, zeros, total = {}, 0, 0
    for name, m in masks.items():
        z = int((m == 0).sum().item())
        layers[name] = z / m.numel()
        zeros, total = zeros + z, total + m.numel()
    for name, n in (shapes or {}).items():
        if name not in masks:
            layers[name] = 0.0
            total += n
    s = zeros / max(total, 1)
    return {"layers": layers, "sparsity": s, "remaining": 1 - s}


def dense_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """All-ones masks for every prunable tensor (the dense level 0)."""
    return {n: torch.ones_like(getattr(m, a).detach().cpu()) for n, (m, a) in prunable_tensors(model).items()}
