"""The pruning entry points: :func:`compute_masks` (scores + scope -> masks) and :func:`prune` (and apply them)."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.prune.masks import apply_masks, get_masks, prunable_tensors
from netpress.prune.scope import SCOPES, check_fraction, global_masks, local_masks
from netpress.prune.scores import Score, resolve_score
from netpress.select import closest


def compute_masks(
    model: nn.Module,
    sparsity: float,
    *,
    score: "str | Score" = "magnitude",
    scope: str = "global",
    layer_sparsity: dict[str, float] | None = None,
    exclude: Iterable[str] = (),
    names: Iterable[str] | None = None,
    data=None,
    allow_collapse: bool = False,
) -> dict[str, torch.Tensor]:
    """Masks that bring the selected tensors to ``sparsity``; the model is not changed.

    Args:
        model: any module (masked or not).
        sparsity: target fraction of zeros in [0, 1) over the selected tensors, counting already-masked weights
            as pruned; weights already masked stay masked.
        score: a registered score name (see ``netpress.prune.SCORES``) or a :class:`Score` instance.
        scope: ``'global'`` (rank all tensors together) or ``'local'`` (each tensor to ``sparsity``).
        layer_sparsity: ``{plain_name: fraction}``: those tensors get their own rate and leave the global ranking.
        exclude: plain names left untouched.
        names: plain names of the tensors to consider (default: every Linear/Conv weight).
        data: a Dataset or DataSplits for scores that need data.
        allow_collapse: let global pruning remove every weight of a tensor.

    Returns:
        ``{plain_name: 0/1 mask}`` for every selected tensor.

    Raises:
        ConfigError: bad fraction or scope, a data-needing score without data, unknown layer names.
        UnknownNameError: unknown score.

    Example:
        >>> masks = compute_masks(net, 0.9, layer_sparsity={"fc_out.weight": 0.45})
    """
    tensors, fractions, score_obj = _validate(model, sparsity, score, scope, layer_sparsity, exclude, names, data)
    old = _old_masks(model, tensors)
    scores = {n: s.detach().cpu() for n, s in score_obj.weight_scores(model, tensors, data).items()}  # masks on CPU
    own = {n: f for n, f in fractions.items() if n in (layer_sparsity or {})}
    rest = [n for n in tensors if n not in own]
    masks = {}
    if scope == "local":
        masks.update(local_masks({n: scores[n] for n in tensors}, old, fractions, allow_collapse))
    else:
        masks.update(local_masks({n: scores[n] for n in own}, old, own, allow_collapse))
        if rest:
            masks.update(global_masks({n: scores[n] for n in rest}, old, float(sparsity), allow_collapse))
    return {n: masks[n].cpu() for n in tensors}


def _validate(model, sparsity, score, scope, layer_sparsity, exclude, names, data):
    sparsity = check_fraction(sparsity)
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; known: {', '.join(SCOPES)}")
    score_obj = resolve_score(score)
    if score_obj.needs_data and data is None:
        raise ConfigError(f"score {score if isinstance(score, str) else type(score).__name__!r} needs data (pass data=...)")
    tensors = prunable_tensors(model, names, exclude)
    layer_sparsity = dict(layer_sparsity or {})
    unknown = sorted(set(layer_sparsity) - set(tensors))
    if unknown:
        raise ConfigError(f"layer_sparsity names unknown or excluded layer(s) {unknown}; {closest(unknown[0], tensors)}")
    fractions = {n: check_fraction(layer_sparsity.get(n, sparsity), f"sparsity of {n}") for n in tensors}
    return tensors, fractions, score_obj


def _old_masks(model: nn.Module, tensors) -> dict[str, torch.Tensor]:
    have = get_masks(model)
    return {n: have[n].cpu() if n in have else torch.ones(getattr(m, a).shape) for n, (m, a) in tensors.items()}


def prune(model: nn.Module, sparsity: float, **kwargs) -> nn.Module:
    """Compute masks (see :func:`compute_masks`, same keyword arguments) and apply them in place.

    Returns:
        ``model``, masked.

    Example:
        >>> prune(net, 0.92, scope="global", layer_sparsity={"fc_out.weight": 0.46})
        >>> netpress.prune.sparsity(net)
        0.92...
    """
    return apply_masks(model, compute_masks(model, sparsity, **kwargs))


def magnitude_threshold_masks(model: nn.Module, quality: float, *, names: Iterable[str] | None = None,
                              exclude: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Han et al.'s threshold mode: per tensor, keep weights with ``|w| > quality * std(w)``.

    ``std`` is taken over the tensor's current effective values (zeros included, as in Distiller); weights
    already masked stay masked.

    Args:
        model: any module.
        quality: the quality parameter (>= 0); larger prunes more.
        names, exclude: tensor selection as in :func:`compute_masks`.

    Returns:
        ``{plain_name: 0/1 mask}``.

    Example:
        >>> apply_masks(net, magnitude_threshold_masks(net, 1.0))
    """
    if not quality >= 0:
        raise ConfigError(f"quality must be >= 0, got {quality}")
    tensors = prunable_tensors(model, names, exclude)
    old = _old_masks(model, tensors)
    out = {}
    for n, (m, a) in tensors.items():
        w = getattr(m, a).detach().cpu()
        out[n] = ((w.abs() > quality * w.float().std()).to(old[n].dtype)) * old[n]
    return out
