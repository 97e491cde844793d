"""Activation-aware scaling of a model before quantization (AWQ): find, search and fold the scales.

1. **Find**: one calibration pass records which module produced each Linear's input tensor. Linear layers whose
   input is the output of a LayerNorm or a Linear form a group under that producer.
2. **Search**: :func:`netpress.quantize.awq.search_scales` picks one input-channel scale per group from the
   group's input statistics and the grids the layers will be quantized on.
3. **Fold**: the consumers' weights are multiplied by the scale and the producer's output divided by it. A fold is
   kept only if the model's output on a calibration batch is unchanged (the producer's output may feed something
   else too, e.g. a residual connection in a post-LayerNorm transformer); otherwise it is undone exactly and the
   report says so.

The model is still float afterwards; quantize it next (``oneshot`` / GPTQ, or the ``awq: true`` option of a
pretrained recipe's GPTQ stage).

Example:
    >>> report = awq_scale(model, batches, {"fc1.weight": GPTQHparams(bits=4)})
    >>> report["0"]["kept"]
    True
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from netpress.calibrate.inputs import call_model, check_inputs, first_tensor
from netpress.calibrate.stats import capture
from netpress.errors import ConfigError
from netpress.quantize.awq import search_scales
from netpress.quantize.gptq import GPTQHparams
from netpress.state import split_name

PRODUCERS = (nn.LayerNorm, nn.Linear)


@torch.no_grad()
def find_groups(model: nn.Module, batch: Any, consumers: dict[str, nn.Linear]) -> dict[str, list[str]]:
    """``{producer module name: [consumer weight names]}``: consumers whose input is a LayerNorm's or Linear's
    output tensor (the first such module that returned it), from one forward pass on ``batch``."""
    made: dict[int, str] = {}
    seen: dict[str, int] = {}
    keep: list[torch.Tensor] = []  # holds the outputs so their ids stay unique during the pass
    names = {m: n for n, m in model.named_modules()}

    def producer_hook(module, _args, out):
        if torch.is_tensor(out) and id(out) not in made and _foldable(module):
            made[id(out)] = names[module]
            keep.append(out)

    def consumer_hook(name):
        def hook(_m, args):
            if args and torch.is_tensor(args[0]):
                seen[name] = id(args[0])
                keep.append(args[0])
        return hook

    handles = [m.register_forward_hook(producer_hook) for m in model.modules() if isinstance(m, PRODUCERS)]
    handles += [m.register_forward_pre_hook(consumer_hook(n)) for n, m in consumers.items()]
    try:
        call_model(model.eval(), batch)
    finally:
        for h in handles:
            h.remove()
    groups: dict[str, list[str]] = {}
    for name, tid in seen.items():
        if tid in made and made[tid] != name.rpartition(".")[0]:
            groups.setdefault(made[tid], []).append(name)
    return groups


def _foldable(module: nn.Module) -> bool:
    if isinstance(module, nn.LayerNorm):
        return module.weight is not None and module.weight.dim() == 1
    return isinstance(module, nn.Linear) and not hasattr(module, "parametrizations")


@torch.no_grad()
def fold(producer: nn.Module, consumers: list[nn.Linear], scale: torch.Tensor) -> None:
    """Divide ``producer``'s output channels by ``scale`` and multiply the consumers' input columns by it."""
    s = scale.to(producer.weight.dtype)
    if isinstance(producer, nn.LayerNorm):
        producer.weight.div_(s)
    else:
        producer.weight.div_(s[:, None])
    if producer.bias is not None:
        producer.bias.div_(s)
    for c in consumers:
        c.weight.mul_(s.to(c.weight.dtype)[None, :])


def awq_scale(model: nn.Module, inputs: Iterable[Any], grids: dict[str, GPTQHparams], *, grid: int = 20,
              tolerance: float = 1e-4) -> dict[str, dict]:
    """Scale ``model``'s Linear weights activation-aware, in place, before quantizing them on ``grids``.

    Args:
        model: any module (float weights, not yet quantized).
        inputs: calibration batches (tensors, tuples or mappings).
        grids: ``{weight name: GPTQHparams}``: the Linear weights to scale and the grids they will be quantized on.
        grid: ``alpha`` values tried per group.
        tolerance: largest change of the model's output allowed by a fold, relative to its largest value.

    Returns:
        ``{producer name: report}``: ``consumers``, ``alpha``, ``error`` / ``error_unscaled`` (the search's
        ``tr(E H E^T)``), ``kept`` (False: the fold changed the model's output and was undone).

    Raises:
        ConfigError: a weight that is not a plain Linear weight; before any change.

    Example:
        >>> awq_scale(net, [x], {"1.weight": GPTQHparams(bits=3)})["0"]["alpha"]
    """
    consumers = _consumers(model, grids)
    batches = check_inputs(inputs)
    groups = find_groups(model, batches[0], consumers)
    if not groups:
        return {}
    first = {p: consumers[names[0]] for p, names in groups.items()}
    stats = capture(model, batches, first)
    reference = first_tensor(call_model(model, batches[0])).detach().float()
    report = {}
    for producer_name, names in groups.items():
        st = stats.get(producer_name)
        if st is None or st.hessian is None:
            continue
        mods = [consumers[n] for n in names]
        rms = (st.sq_norms / max(st.n, 1)).sqrt()
        scale, found = search_scales([m.weight for m in mods], st.hessian, rms, [grids[n] for n in names], grid)
        producer = model.get_submodule(producer_name)
        kept = found["alpha"] > 0 and _fold_if_exact(model, batches[0], reference, producer, mods, scale, tolerance)
        report[producer_name] = {"consumers": names, **found, "kept": kept}
    return report


def scalable(model: nn.Module, name: str) -> bool:
    """Whether the tensor ``name`` is a plain (not parametrized) Linear weight: the only kind AWQ scales."""
    module_name, attr = split_name(name)
    module = model.get_submodule(module_name)
    return attr == "weight" and isinstance(module, nn.Linear) and not hasattr(module, "parametrizations")


def _consumers(model: nn.Module, grids: dict[str, GPTQHparams]) -> dict[str, nn.Linear]:
    bad = next((name for name in grids if not scalable(model, name)), None)
    if bad is not None:
        raise ConfigError(f"AWQ scales plain Linear weights; {bad!r} is not one")
    return {name: model.get_submodule(split_name(name)[0]) for name in grids}


@torch.no_grad()
def _fold_if_exact(model, batch, reference, producer, consumers, scale, tolerance) -> bool:
    saved = [t.detach().clone() for t in _tensors(producer, consumers)]
    fold(producer, consumers, scale)
    out = first_tensor(call_model(model, batch)).detach().float()
    if float((out - reference).abs().max()) <= tolerance * float(reference.abs().max().clamp_min(1e-12)):
        return True
    for t, old in zip(_tensors(producer, consumers), saved):
        t.copy_(old)
    return False


def _tensors(producer: nn.Module, consumers: list[nn.Linear]) -> list[torch.Tensor]:
    return [producer.weight] + ([producer.bias] if producer.bias is not None else []) + [c.weight for c in consumers]


__all__ = ["PRODUCERS", "find_groups", "fold", "awq_scale", "scalable"]
