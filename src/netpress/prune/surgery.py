"""Structured pruning with physical surgery: remove neurons/filters/channels and get a smaller dense model.

Flow of :func:`prune_structured`: trace the channel groups (:mod:`netpress.prune.graph`), score each group's
channels (sum over its producers of a unit score: ``l1``, ``l2``, ``activation``, ``apoz``, or any Score),
build the *masked* model (pruned rows, biases and BatchNorm affine entries zeroed through the one mask
mechanism), cut the same channels out of a copy (the *thinned* model), and check that both give the same
outputs, naming the first layer that differs otherwise.

Example:
    >>> res = prune_structured(net, 0.5, torch.zeros(1, 1, 28, 28))
    >>> small = res.model            # an ordinary, smaller nn.Module
    >>> save_thinned(small, "small.safetensors"); load_thinned("small.safetensors")
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.prune.graph import DependencyGraph, SurgeryError
from netpress.prune.masks import apply_masks, get_masks, strip
from netpress.prune.scope import check_fraction
from netpress.prune.scores import Score, resolve_score
from netpress.state import replace_tensor as _replace, resize_to, sync_shape as _sync_shape  # noqa: F401


@dataclasses.dataclass
class StructuredPlan:
    """Which channels survive. ``keep``: root group id -> sorted kept channel indices (pruned groups only)."""

    graph: DependencyGraph
    keep: dict[int, torch.Tensor]
    skipped: dict[str, list[str]]  # producer names of blocked groups -> reasons

    def summary(self) -> list[dict]:
        """One row per pruned group: producers, channels before and after."""
        return [{"producers": ",".join(self.graph.group(g).producers), "channels": self.graph.group(g).size,
                 "kept": len(k)} for g, k in self.keep.items()]


@dataclasses.dataclass
class StructuredResult:
    """``model``: the thinned model; ``masked``: the equivalent masked full-size model; ``plan``."""

    model: nn.Module
    masked: nn.Module
    plan: StructuredPlan


def _layer_names(names: Iterable[str] | None) -> set[str] | None:
    return None if names is None else {n[:-len(".weight")] if n.endswith(".weight") else n for n in names}


def plan_structured(model: nn.Module, example_input: torch.Tensor, fraction: float, *, score: "str | Score" = "l1",
                    names: Iterable[str] | None = None, exclude: Iterable[str] = (), data=None) -> StructuredPlan:
    """Choose the channels to remove: ``round(fraction * size)`` per group (at least one channel stays).

    Args:
        model: any traceable module.
        example_input: a batch for shapes.
        fraction: fraction of each group's channels to remove, in [0, 1).
        score: a unit score name or Score (default ``l1``).
        names: producer layers (``'fc1'`` or ``'fc1.weight'``) whose groups to prune; default all prunable groups.
        exclude: producer layers whose groups stay whole.
        data: for data-driven scores.

    Returns:
        :class:`StructuredPlan`.

    Raises:
        SurgeryError: a named layer is in a group that cannot be pruned (the reason names the module/op), or
            no group at all can be pruned.
    """
    fraction = check_fraction(fraction, "structured fraction")
    score_obj = resolve_score(score)
    if score_obj.needs_data and data is None:
        raise ConfigError(f"score {score!r} needs data (pass data=...)")
    graph = DependencyGraph(model, example_input)
    wanted, excluded = _layer_names(names), _layer_names(exclude)
    _check_names(graph, (wanted or set()) | excluded)
    keep, skipped = {}, {}
    for gid, grp in graph.groups().items():
        if wanted is not None and not wanted & set(grp.producers) or excluded & set(grp.producers):
            continue
        if grp.blocked:
            skipped[",".join(grp.producers)] = grp.blocked
            if wanted is not None:
                raise SurgeryError(f"cannot remove channels of {', '.join(sorted(wanted & set(grp.producers)))}: "
                                   + "; ".join(grp.blocked))
            continue
        keep[gid] = _keep_indices(model, grp, fraction, score_obj, data)
    if not keep:
        raise SurgeryError("no layer can be pruned structurally: " +
                           "; ".join(f"{p}: {', '.join(r)}" for p, r in skipped.items()))
    return StructuredPlan(graph, keep, skipped)


def _check_names(graph: DependencyGraph, names: set[str]) -> None:
    known = {p for g in graph.groups().values() for p in g.producers}
    unknown = sorted(names - known)
    if unknown:
        raise ConfigError(f"unknown layer(s) {unknown}; Linear/Conv layers: {', '.join(sorted(known))}")


def _keep_indices(model, grp, fraction, score_obj, data) -> torch.Tensor:
    mods = dict(model.named_modules())
    tensors = {f"{p}.weight": (mods[p], "weight") for p in grp.producers}
    units = score_obj.unit_scores(model, tensors, data)
    total = sum(u.detach().double().cpu() for u in units.values())
    n_drop = min(round(fraction * grp.size), grp.size - 1)
    order = torch.argsort(total, descending=True, stable=True)
    return order[:grp.size - n_drop].sort().values


def structured_masks(model: nn.Module, plan: StructuredPlan) -> dict[str, torch.Tensor]:
    """Masks zeroing the removed channels: producer weight rows and biases, BatchNorm weight and bias.

    Existing masks on those tensors are kept (the product is returned).
    """
    mods, old, out = dict(model.named_modules()), get_masks(model), {}
    for gid, keep in plan.keep.items():
        grp = plan.graph.group(gid)
        alive = torch.zeros(grp.size)
        alive[keep] = 1
        for name in grp.producers + grp.norms:
            for attr in ("weight", "bias"):
                t = getattr(mods[name], attr, None)
                if t is not None:
                    m = alive.reshape(-1, *([1] * (t.dim() - 1))).expand(t.shape).clone()
                    key = f"{name}.{attr}"
                    out[key] = m * old[key].cpu() if key in old else m
    return out


def _expand(keep: torch.Tensor, factor: int) -> torch.Tensor:
    return (keep[:, None] * factor + torch.arange(factor)).reshape(-1) if factor > 1 else keep


@torch.no_grad()
def thin(model: nn.Module, plan: StructuredPlan) -> nn.Module:
    """Cut the removed channels out of ``model`` in place (masks are stripped first). Returns ``model``."""
    strip(model)
    mods = dict(model.named_modules())
    for gid, keep in plan.keep.items():
        grp = plan.graph.group(gid)
        for name in grp.producers:
            m = mods[name]
            _replace(m, "weight", m.weight[keep])
            if m.bias is not None:
                _replace(m, "bias", m.bias[keep])
            _sync_shape(m)
        for name, factor in grp.consumers:
            m = mods[name]
            _replace(m, "weight", m.weight.index_select(1, _expand(keep, factor).to(m.weight.device)))
            _sync_shape(m)
        for name in grp.norms:
            m = mods[name]
            for attr in ("weight", "bias", "running_mean", "running_var"):
                if getattr(m, attr, None) is not None:
                    _replace(m, attr, getattr(m, attr)[keep])
            _sync_shape(m)
    return model


@torch.no_grad()
def verify(masked: nn.Module, thinned: nn.Module, plan: StructuredPlan, example_input: torch.Tensor,
           atol: float = 1e-4, rtol: float = 1e-4) -> float:
    """Check that ``thinned`` computes what ``masked`` computes; returns the max abs output difference.

    Raises:
        SurgeryError: naming the first layer (in execution order) whose kept outputs differ.
    """
    states = [m.training for m in (masked, thinned)]
    masked.eval(), thinned.eval()
    try:
        a, b = masked(example_input), thinned(example_input)
        if a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=rtol):
            return float((a - b).abs().max()) if a.numel() else 0.0
        raise SurgeryError(f"thinned model differs from the masked one: {_first_difference(masked, thinned, plan, example_input, atol, rtol)}")
    finally:
        masked.train(states[0]), thinned.train(states[1])


def _first_difference(masked, thinned, plan, x, atol, rtol) -> str:
    outs = [{}, {}]
    hooks = []
    for store, model in zip(outs, (masked, thinned)):
        for name in plan.graph.module_tracks:
            hooks.append(model.get_submodule(name).register_forward_hook(
                lambda mod, i, o, name=name, store=store: store.setdefault(name, o)))
    try:
        masked(x), thinned(x)
    finally:
        for h in hooks:
            h.remove()
    for name, track in plan.graph.module_tracks.items():
        ref, got = outs[0].get(name), outs[1].get(name)
        if not torch.is_tensor(ref) or not torch.is_tensor(got):
            continue
        root = plan.graph.find(track.gid) if track else None
        if root in plan.keep:
            ref = ref.index_select(track.dim, _expand(plan.keep[root], track.factor))
        if ref.shape != got.shape or not torch.allclose(ref, got, atol=atol, rtol=rtol):
            diff = "shape" if ref.shape != got.shape else f"max diff {float((ref - got).abs().max()):.3g}"
            return f"first at layer {name} ({type(thinned.get_submodule(name)).__name__}, {diff})"
    return "at an operation after the last layer"


def prune_structured(model: nn.Module, fraction: float, example_input: torch.Tensor, *, score: "str | Score" = "l1",
                     names: Iterable[str] | None = None, exclude: Iterable[str] = (), data=None,
                     check: bool = True) -> StructuredResult:
    """Remove ``fraction`` of the channels of every prunable group and return the smaller model.

    Args:
        model: any traceable module (left unchanged).
        fraction: fraction of channels removed per group, in [0, 1).
        example_input: a batch (shapes and the equivalence check).
        score, names, exclude, data: as :func:`plan_structured`.
        check: verify the thinned model against the masked one (recommended).

    Returns:
        :class:`StructuredResult` with the thinned ``model``, the ``masked`` equivalent and the ``plan``.

    Raises:
        SurgeryError: untraceable model, a layer that cannot be followed (named), or a failed check.

    Example:
        >>> small = prune_structured(net, 0.5, torch.zeros(1, 1, 28, 28)).model
    """
    base = strip(copy.deepcopy(model))
    plan = plan_structured(base, example_input, fraction, score=score, names=names, exclude=exclude, data=data)
    masked = apply_masks(copy.deepcopy(base), structured_masks(base, plan))
    thinned = thin(copy.deepcopy(masked), plan)
    if check:
        verify(masked, thinned, plan, example_input)
    return StructuredResult(thinned, masked, plan)


def save_thinned(model: nn.Module, path: str | Path, spec: dict | None = None) -> Path:
    """Save a (thinned) model as safetensors without pickling; metadata holds the spec and per-layer shapes.

    Args:
        model: an ordinary module (masks are stripped from a copy).
        path: file to write.
        spec: the registry spec to rebuild it (default ``model.netpress_spec`` if present).

    Returns:
        The path.
    """
    from safetensors.torch import save_file

    model = strip(copy.deepcopy(model))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    spec = spec if spec is not None else getattr(model, "netpress_spec", None)
    meta = {"spec": spec, "shapes": {k: list(v.shape) for k, v in state.items()}}
    save_file(state, str(path), metadata={"netpress": json.dumps(meta)})
    return Path(path)


def load_thinned(path: str | Path, model: nn.Module | None = None) -> nn.Module:
    """Rebuild a model saved by :func:`save_thinned`: build the registry model (or take ``model``, a fresh
    instance of the original architecture), resize its layers to the stored shapes, load the tensors.

    Raises:
        ConfigError: no spec stored and no ``model`` given, or the tensors do not fit.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("netpress", "{}"))
    state = load_file(str(path))
    if model is None:
        if not meta.get("spec"):
            raise ConfigError(f"{path} holds no model spec; pass model= (a fresh instance of the architecture)")
        from netpress.models import model_from_spec
        model = model_from_spec(meta["spec"])
    resize_to(model, state)
    model.load_state_dict(state)
    return model
