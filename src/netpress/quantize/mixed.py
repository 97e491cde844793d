"""Mixed precision: per-layer sensitivity to bit width, then the bit allocation with the least predicted loss
under a size budget (an exact multiple-choice knapsack, solved by dynamic programming over the size).

The predicted loss of a plan is the float loss plus the sum of each layer's measured loss increase at its bit
width (layers quantized one at a time, the others left in float).

Example:
    >>> sens = bit_sensitivity(net, data, bits=(2, 4, 8))
    >>> plan = allocate_bits(sens, budget_bytes=40_000)
    >>> print(plan.table())
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Iterable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.quantize.activations import calibration_inputs
from netpress.quantize.base import check_bits, selected_tensors
from netpress.quantize.uniform import UniformSpec, quantize_weights
from netpress.textfmt import table


@dataclasses.dataclass
class Sensitivity:
    """Loss increase of quantizing each layer alone.

    Attributes:
        base_loss: the float model's loss on the calibration examples.
        delta: ``{layer: {bits: loss increase}}``.
        params: ``{layer: number of weights}``.
    """

    base_loss: float
    delta: dict[str, dict[int, float]]
    params: dict[str, int]


@torch.no_grad()
def _loss(model: nn.Module, xs: list[torch.Tensor], ys: list[torch.Tensor]) -> float:
    model.eval()
    total = sum(nn.functional.cross_entropy(model(x), y, reduction="sum").item() for x, y in zip(xs, ys))
    return total / sum(len(y) for y in ys)


def bit_sensitivity(model: nn.Module, data, bits: Iterable[int] = (2, 3, 4, 5, 6, 8), *,
                    spec: UniformSpec = UniformSpec(granularity="channel"), examples: int = 1024,
                    names: Iterable[str] | None = None) -> Sensitivity:
    """Quantize one layer at a time at each bit width and measure the loss increase.

    Args:
        model: a float model (not changed).
        data: DataSplits (``val`` if present, else ``train``) or a Dataset of (x, y).
        bits: bit widths to try.
        spec: the uniform quantizer (its ``bits`` is replaced).
        examples: calibration examples.
        names: layers (default: every Linear/Conv weight).

    Returns:
        :class:`Sensitivity`.

    Raises:
        ConfigError: no data, or bits outside 1-16.

    Example:
        >>> bit_sensitivity(net, data, bits=(2, 8)).delta["fc1.weight"][2]
    """
    bits = [check_bits(b) for b in bits]
    dataset = getattr(data, "val", None) or getattr(data, "train", data)
    if dataset is None or len(dataset) == 0:
        raise ConfigError("bit sensitivity needs data")
    xs = list(calibration_inputs(dataset, examples))
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:examples]
    ys = [dataset.y[order[i:i + 256]] if hasattr(dataset, "y") else
          torch.tensor([int(dataset[int(j)][1]) for j in order[i:i + 256]]) for i in range(0, len(order), 256)]
    tensors = selected_tensors(model, names)
    base = _loss(model, xs, ys)
    delta = {}
    for name in tensors:
        delta[name] = {}
        for b in bits:
            q = quantize_weights(copy.deepcopy(model), spec.replace(bits=b), names=[name])
            delta[name][b] = _loss(q, xs, ys) - base
    params = {n: getattr(m, a).numel() for n, (m, a) in tensors.items()}
    return Sensitivity(base, delta, params)


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
        return table(self.rows, ["layer", "params", "bits", "bytes", "predicted_loss_increase"])


def allocate_bits(sens: Sensitivity, budget_bytes: float, resolution: int = 2000) -> BitPlan:
    """The allocation with the least predicted loss whose weights fit ``budget_bytes`` (params * bits / 8).

    Sizes are rounded up to ``budget / resolution`` units, so the plan always fits the budget.

    Args:
        sens: from :func:`bit_sensitivity`.
        budget_bytes: size budget for the quantized weights.
        resolution: size units of the dynamic program.

    Returns:
        :class:`BitPlan`.

    Raises:
        ConfigError: the budget is below the smallest plan.

    Example:
        >>> allocate_bits(sens, budget_bytes=30_000).bits
    """
    layers = list(sens.delta)
    unit = budget_bytes / resolution
    options = {n: sorted((math.ceil(sens.params[n] * b / 8 / unit), sens.delta[n][b], b) for b in sens.delta[n])
               for n in layers}
    if sum(o[0][0] for o in options.values()) > resolution:
        smallest = sum(sens.params[n] * min(sens.delta[n]) / 8 for n in layers)
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
    rows = [{"layer": n, "params": sens.params[n], "bits": b, "bytes": sens.params[n] * b / 8,
             "predicted_loss_increase": sens.delta[n][b]} for n, b in bits.items()]
    return BitPlan(bits, rows, sum(r["bytes"] for r in rows), budget_bytes, sens.base_loss + loss)


def apply_plan(model: nn.Module, plan: BitPlan, spec: UniformSpec = UniformSpec(granularity="channel")) -> nn.Module:
    """Quantize each layer at its planned bit width (uniform, frozen codes).

    Example:
        >>> apply_plan(net, allocate_bits(bit_sensitivity(net, data), 30_000))
    """
    return quantize_weights(model, {n: spec.replace(bits=b) for n, b in plan.bits.items()})
