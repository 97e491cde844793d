"""Accounting: per-layer and total parameters, nonzeros, sparsity and FLOPs (dense vs effective).

FLOPs are multiply-accumulates of Linear/Conv layers for one example: dense = weights x output positions,
effective = nonzero weights x output positions (what a sparse kernel must do).

Example:
    >>> rows, total = account(net, (1, 28, 28))
    >>> total["sparsity"], total["flops_dense"] / total["flops_effective"]
"""
from __future__ import annotations

import math

import torch
from torch import nn

from netpress.modes import eval_mode
from netpress.prune.masks import PRUNABLE_TYPES


@torch.no_grad()
def account(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[dict], dict]:
    """Count parameters, nonzeros and MACs per Linear/Conv layer on one example of ``input_shape``.

    Args:
        model: any module (masked, stripped or thinned).
        input_shape: one example's shape, e.g. ``(1, 28, 28)``.

    Returns:
        ``(rows, total)``; each row: layer, params, nonzeros, sparsity, flops_dense, flops_effective;
        ``total`` the same over all parameters (params/nonzeros) and the Linear/Conv layers (FLOPs).
    """
    positions = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: positions.__setitem__(n, o[0].numel() // o.shape[-1] if isinstance(mod, nn.Linear) else o[0, 0].numel()))
             for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
    try:
        with eval_mode(model):
            dev = next(model.parameters()).device
            model(torch.zeros(1, *input_shape, device=dev))
    finally:
        for h in hooks:
            h.remove()
    rows = [_row(n, m, positions.get(n, 0)) for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
    return rows, _total(model, rows)


def _row(name: str, m: nn.Module, positions: int) -> dict:
    w = m.weight
    nnz = int((w != 0).sum())
    per_out = w.numel() // w.shape[0]  # MACs per output value
    return {"layer": name, "shape": "x".join(map(str, w.shape)), "params": w.numel(), "nonzeros": nnz,
            "sparsity": 1 - nnz / w.numel(), "flops_dense": w.shape[0] * per_out * positions,
            "flops_effective": nnz * positions}


def _total(model: nn.Module, rows: list[dict]) -> dict:
    from netpress.prune.masks import plain_state_dict
    sd = {k: v for k, v in plain_state_dict(model).items() if v.is_floating_point() and "running" not in k}
    params = sum(v.numel() for v in sd.values())
    nnz = sum(int((v != 0).sum()) for v in sd.values())
    dense = sum(r["flops_dense"] for r in rows)
    eff = sum(r["flops_effective"] for r in rows)
    return {"layer": "total", "params": params, "nonzeros": nnz, "sparsity": 1 - nnz / max(params, 1),
            "flops_dense": dense, "flops_effective": eff, "flops_ratio": dense / max(eff, 1)}
