"""Scopes: *how much* of each tensor to prune, given scores. Exact counts, whatever the ties.

- ``local``: every tensor is pruned to the target fraction on its own.
- ``global``: all tensors' scores are ranked together (Han-style global magnitude, as in the LTH conv nets).

In both, weights already masked are counted as pruned and stay pruned (new masks are subsets of old), and
tensors given their own rate in ``layer_sparsity`` are pruned locally at that rate, outside the global ranking.
"""
from __future__ import annotations

import math

import torch

from netpress.errors import ConfigError

SCOPES = ("global", "local")
# layer-collapse guard: global pruning keeps at least this fraction (and at least one weight) of every tensor
MIN_KEEP_FRACTION = 0.002


def check_fraction(value: float, what: str = "sparsity") -> float:
    """Raise a ConfigError unless ``0 <= value < 1``; return it as a float."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a fraction in [0, 1), got {value!r}") from None
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{what} must be a fraction in [0, 1), got {value}")
    return value


def _ranked_prune(scores: torch.Tensor, alive: torch.Tensor, n_prune: int, protect: torch.Tensor | None = None) -> torch.Tensor:
    """Flat keep-mask pruning exactly ``n_prune`` entries: dead ones first, then lowest scores (stable by index)."""
    s = scores.detach().double().clone()
    s[~alive] = -math.inf
    if protect is not None:
        s[protect] = math.inf
    n_prune = max(0, min(n_prune, s.numel()))
    order = torch.argsort(s, stable=True)
    keep = torch.ones_like(alive)
    keep[order[:n_prune]] = False
    return keep


def local_masks(scores: dict[str, torch.Tensor], old: dict[str, torch.Tensor], fractions: dict[str, float],
                allow_collapse: bool = False) -> dict[str, torch.Tensor]:
    """Prune each tensor to its own fraction.

    Args:
        scores: importance per tensor (higher = keep).
        old: current 0/1 masks (ones for unmasked tensors).
        fractions: target zero fraction per tensor.
        allow_collapse: allow a tensor to lose every weight (else at least one is kept).

    Returns:
        ``{name: 0/1 float mask}``.
    """
    out = {}
    for name, s in scores.items():
        alive = old[name].reshape(-1) > 0
        n = s.numel()
        n_prune = max(round(fractions[name] * n), n - int(alive.sum()))
        if not allow_collapse:
            n_prune = min(n_prune, n - 1) if alive.any() else n_prune
        out[name] = _ranked_prune(s.reshape(-1), alive, n_prune).reshape(s.shape).to(old[name].dtype)
    return out


def global_masks(scores: dict[str, torch.Tensor], old: dict[str, torch.Tensor], fraction: float,
                 allow_collapse: bool = False) -> dict[str, torch.Tensor]:
    """Rank all tensors' scores together and prune exactly ``round(fraction * total)`` weights in all.

    The layer-collapse guard (unless ``allow_collapse``) protects the top ``max(1, ceil(MIN_KEEP_FRACTION * n))``
    surviving weights of every tensor.

    Raises:
        ConfigError: when the guard makes the target unreachable.
    """
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1).double() for n in names])
    alive = torch.cat([old[n].reshape(-1) > 0 for n in names])
    protect = None if allow_collapse else torch.cat([_protected(scores[n], old[n]) for n in names])
    total = flat.numel()
    n_prune = max(round(fraction * total), total - int(alive.sum()))
    if protect is not None and n_prune > total - int(protect.sum()):
        raise ConfigError(f"global sparsity {fraction} would remove whole layers; lower it or pass allow_collapse=True")
    keep = _ranked_prune(flat, alive, n_prune, protect)
    out, start = {}, 0
    for n in names:
        k = scores[n].numel()
        out[n] = keep[start:start + k].reshape(scores[n].shape).to(old[n].dtype)
        start += k
    return out


def _protected(score: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    s = score.reshape(-1).double().clone()
    alive = old.reshape(-1) > 0
    s[~alive] = -math.inf
    k = min(int(alive.sum()), max(1, math.ceil(MIN_KEEP_FRACTION * s.numel())))
    prot = torch.zeros(s.numel(), dtype=torch.bool)
    if k:
        prot[torch.argsort(s, descending=True, stable=True)[:k]] = True
    return prot
