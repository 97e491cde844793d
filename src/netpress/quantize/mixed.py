"""Mixed precision: per-layer sensitivity to bit width, then the bit allocation with the least predicted loss
under a size budget (an exact multiple-choice knapsack, solved by dynamic programming over the size).

The predicted loss of a plan is the base loss plus the sum of each layer's measured loss increase at its bit
width (layers quantized one at a time, the others left in float). The loss is cross-entropy on labelled data,
any quality function ``model -> float`` (e.g. :class:`netpress.calibrate.OutputQuality`: output distance to the
original model, no labels), or, with no forward passes at all, a Hessian proxy: each layer's output error
``tr(E H E^T)`` of GPTQ rounding at that width, from its input Hessian ``H = 2 X^T X / n``.

Example:
    >>> sens = bit_sensitivity(net, data, bits=(2, 4, 8))
    >>> sens = bit_sensitivity(net, bits=(2, 3, 4, 8), quality=OutputQuality(net, batches))
    >>> plan = allocate_bits(sens, avg_bits=3.5)
    >>> print(plan.table())
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Callable, Iterable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.quantize.activations import calibration_inputs
from netpress.quantize.base import check_bits, quantizer_of, selected_tensors
from netpress.quantize.uniform import UniformSpec, calibrate, quantize_weights, uniform_codes


@dataclasses.dataclass
class Sensitivity:
    """Loss increase of quantizing each layer alone.

    Attributes:
        base_loss: the float model's loss on the calibration examples (0 for quality and Hessian proxies).
        delta: ``{layer: {bits: loss increase}}``.
        params: ``{layer: number of weights}``.
        kind: what the loss is: ``cross_entropy``, ``quality`` or ``hessian``.
    """

    base_loss: float
    delta: dict[str, dict[int, float]]
    params: dict[str, int]
    kind: str = "cross_entropy"


@torch.no_grad()
def _loss(model: nn.Module, xs: list[torch.Tensor], ys: list[torch.Tensor]) -> float:
    model.eval()
    total = sum(nn.functional.cross_entropy(model(x), y, reduction="sum").item() for x, y in zip(xs, ys))
    return total / sum(len(y) for y in ys)


def _cross_entropy(data, examples: int) -> Callable[[nn.Module], float]:
    dataset = None if data is None else getattr(data, "val", None) or getattr(data, "train", data)
    if dataset is None or len(dataset) == 0:
        raise ConfigError("bit sensitivity needs labelled data, a quality function or Hessians")
    xs = list(calibration_inputs(dataset, examples))
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:examples]
    ys = [dataset.y[order[i:i + 256]] if hasattr(dataset, "y") else
          torch.tensor([int(dataset[int(j)][1]) for j in order[i:i + 256]]) for i in range(0, len(order), 256)]
    return lambda model: _loss(model, xs, ys)


def bit_sensitivity(model: nn.Module, data=None, bits: Iterable[int] = (2, 3, 4, 5, 6, 8), *,
                    spec: UniformSpec = UniformSpec(granularity="channel"), examples: int = 1024,
                    names: Iterable[str] | None = None, quality: Callable[[nn.Module], float] | None = None,
                    hessians: dict[str, torch.Tensor] | None = None) -> Sensitivity:
    """Quantize one layer at a time at each bit width and measure the loss increase.

    Args:
        model: a float model (left as it was).
        data: DataSplits (``val`` if present, else ``train``) or a Dataset of (x, y), for cross-entropy; not
            needed with ``quality`` or ``hessians``.
        bits: bit widths to try.
        spec: the uniform quantizer (its ``bits`` is replaced).
        examples: calibration examples (cross-entropy).
        names: layers (default: every Linear/Conv weight).
        quality: a loss ``model -> float`` used instead of cross-entropy, e.g.
            :class:`netpress.calibrate.OutputQuality` (no labels needed).
        hessians: ``{layer: H}`` (see :func:`netpress.calibrate.layer_hessians`): the increase is the layer's
            output error ``tr(E H E^T)`` of GPTQ at that width (no forward passes); ``spec``'s symmetry is used.

    Returns:
        :class:`Sensitivity`.

    Raises:
        ConfigError: no data/quality/Hessians, a Hessian missing for a layer, or bits outside 1-16.

    Example:
        >>> bit_sensitivity(net, data, bits=(2, 8)).delta["fc1.weight"][2]
        >>> bit_sensitivity(net, bits=(2, 8), quality=OutputQuality(net, batches, loss="cosine"))
    """
    bits = [check_bits(b) for b in bits]
    tensors = selected_tensors(model, names)
    params = {n: getattr(m, a).numel() for n, (m, a) in tensors.items()}
    if hessians is not None:
        return Sensitivity(0.0, _hessian_deltas(tensors, hessians, bits, spec), params, "hessian")
    loss = quality if quality is not None else _cross_entropy(data, examples)
    base = float(loss(model))
    delta = {name: {b: float(_alone(model, name, module, attr, spec.replace(bits=b), loss)) - base for b in bits}
             for name, (module, attr) in tensors.items()}
    return Sensitivity(base, delta, params, "quality" if quality is not None else "cross_entropy")


@torch.no_grad()
def _alone(model: nn.Module, name: str, module: nn.Module, attr: str, spec: UniformSpec, loss) -> float:
    """The loss with only ``name`` quantized: its values are swapped in and restored (no copy of the model)."""
    if quantizer_of(module, attr) is not None:  # already quantized: quantize a copy
        return loss(quantize_weights(copy.deepcopy(model), spec, names=[name]))
    parametrized = hasattr(module, "parametrizations") and attr in module.parametrizations
    target = module.parametrizations[attr].original if parametrized else getattr(module, attr)
    w = getattr(module, attr).detach()
    backup = target.detach().clone()
    target.copy_(uniform_codes(w, *calibrate(w, spec), spec).decode())
    try:
        return loss(model)
    finally:
        target.copy_(backup)


def _hessian_deltas(tensors, hessians, bits, spec) -> dict[str, dict[int, float]]:
    from netpress.quantize.gptq import GPTQHparams, gptq_codes, output_error

    missing = [n for n in tensors if n not in hessians]
    if missing:
        raise ConfigError(f"no Hessian for layer(s) {missing}")
    out = {}
    for name, (module, attr) in tensors.items():
        w, h = getattr(module, attr).detach(), hessians[name]
        out[name] = {b: output_error(w, gptq_codes(w, h, GPTQHparams(bits=b, symmetric=spec.symmetric)).decode(), h)
                     for b in bits}
    return out


@dataclasses.dataclass
class BitPlan:
    """A bit allocation.

    Attributes:
        bits: ``{layer: bits}``.
        rows: one dict per layer: layer, params, bits, bytes, predicted_loss_increase.
        total_bytes: weights' index storage (params * bits / 8) summed.
        budget_bytes: the budget.
        predicted_loss: base loss + summed increases.
    """

    bits: dict[str, int]
    rows: list[dict]
    total_bytes: float
    budget_bytes: float
    predicted_loss: float

    def table(self) -> str:
        """The plan as an aligned text table."""
        from netpress.cli.common import table

        return table(self.rows, ["layer", "params", "bits", "bytes", "predicted_loss_increase"])


def allocate_bits(sens: Sensitivity, budget_bytes: float | None = None, resolution: int = 2000, *,
                  avg_bits: float | None = None, density: dict[str, float] | None = None) -> BitPlan:
    """The allocation with the least predicted loss whose weights fit the budget (kept weights * bits / 8).

    Sizes are rounded up to ``budget / resolution`` units, so the plan always fits the budget.

    Args:
        sens: from :func:`bit_sensitivity`.
        budget_bytes: size budget for the quantized weights; or
        avg_bits: a (fractional) average bits per kept weight over the layers, e.g. 3.5.
        resolution: size units of the dynamic program.
        density: ``{layer: fraction of weights kept}`` after pruning (default 1): a layer costs its kept
            weights, so pruning and bit width share one budget.

    Returns:
        :class:`BitPlan`.

    Raises:
        ConfigError: not exactly one of ``budget_bytes`` / ``avg_bits``, a density outside (0, 1], or a budget
            below the smallest plan.

    Example:
        >>> allocate_bits(sens, budget_bytes=30_000).bits
        >>> allocate_bits(sens, avg_bits=3.5, density={"fc1.weight": 0.5})
    """
    layers = list(sens.delta)
    kept = _kept_weights(sens, density)
    if (budget_bytes is None) == (avg_bits is None):
        raise ConfigError("give exactly one of budget_bytes and avg_bits")
    if avg_bits is not None:
        if not avg_bits > 0:
            raise ConfigError(f"avg_bits must be > 0, got {avg_bits}")
        budget_bytes = sum(kept.values()) * avg_bits / 8
    unit = budget_bytes / resolution
    options = {n: sorted((math.ceil(kept[n] * b / 8 / unit), sens.delta[n][b], b) for b in sens.delta[n])
               for n in layers}
    if sum(o[0][0] for o in options.values()) > resolution:
        smallest = sum(kept[n] * min(sens.delta[n]) / 8 for n in layers)
        raise ConfigError(f"budget {budget_bytes:.0f} bytes is below the smallest plan ({smallest:.0f} bytes)")
    best = {0: (0.0, [])}  # used units -> (loss, choices)
    for n in layers:
        nxt: dict[int, tuple[float, list]] = {}
        for used, (loss, picks) in best.items():
            for cost, d, b in options[n]:
                u = used + cost
                if u <= resolution and (u not in nxt or loss + d < nxt[u][0]):
                    nxt[u] = (loss + d, picks + [b])
        best = nxt
    loss, picks = min(best.values(), key=lambda v: v[0])
    bits = dict(zip(layers, picks))
    rows = [{"layer": n, "params": sens.params[n], "bits": b, "bytes": kept[n] * b / 8,
             "predicted_loss_increase": sens.delta[n][b]} for n, b in bits.items()]
    return BitPlan(bits, rows, sum(r["bytes"] for r in rows), budget_bytes, sens.base_loss + loss)


def _kept_weights(sens: Sensitivity, density: dict[str, float] | None) -> dict[str, float]:
    density = density or {}
    unknown = sorted(set(density) - set(sens.delta))
    if unknown:
        raise ConfigError(f"density for unknown layer(s) {unknown}; layers: {list(sens.delta)}")
    bad = {n: d for n, d in density.items() if not 0 < d <= 1}
    if bad:
        raise ConfigError(f"density must be in (0, 1], got {bad}")
    return {n: sens.params[n] * density.get(n, 1.0) for n in sens.delta}


def apply_plan(model: nn.Module, plan: BitPlan, spec: UniformSpec = UniformSpec(granularity="channel")) -> nn.Module:
    """Quantize each layer at its planned bit width (uniform, frozen codes).

    Example:
        >>> apply_plan(net, allocate_bits(bit_sensitivity(net, data), 30_000))
    """
    return quantize_weights(model, {n: spec.replace(bits=b) for n, b in plan.bits.items()})
