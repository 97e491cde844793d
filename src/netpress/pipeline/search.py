"""Sensitivity-driven choices for the ``max`` recipe: per-layer sparsity and bits within an accuracy budget.

Each layer is changed alone on a copy of the model, without retraining, and scored on (a slice of) the
validation set; the most aggressive setting whose accuracy drop stays within the budget is kept.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from netpress.data import DataSplits, TensorData
from netpress.pipeline.recipe import PruneStage, QuantizeStage, layer_refs, layer_value
from netpress.train import evaluate

SPARSITY_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99)
SCAN_EXAMPLES = 2000


def _scan_set(data: DataSplits):
    held = data.val if data.val is not None and len(data.val) else data.test
    if isinstance(held, TensorData) and len(held) > SCAN_EXAMPLES:
        return held.subset(torch.arange(SCAN_EXAMPLES))
    return held


def sensitive_sparsity(model: nn.Module, data: DataSplits, hp: PruneStage) -> dict[str, float]:
    """Per-layer target sparsity: the largest grid value (capped at ``hp.sparsity`` or the layer's own entry in
    ``hp.layers``) whose one-layer accuracy drop is within ``hp.accuracy_budget``.

    Returns:
        ``{plain_name: fraction}`` for every Linear/Conv weight.
    """
    from netpress.prune import compute_masks, apply_masks

    held = _scan_set(data)
    base = evaluate(model, held).accuracy
    targets = {}
    for ref in layer_refs(model):
        cap = float(layer_value(hp.layers, ref, hp.sparsity))
        best = 0.0
        for s in (g for g in SPARSITY_GRID if g <= cap):
            trial = copy.deepcopy(model)
            apply_masks(trial, compute_masks(trial, 0.0, scope="local", layer_sparsity={ref.name: s}))
            if base - evaluate(trial, held).accuracy > hp.accuracy_budget:
                break
            best = s
        targets[ref.name] = best
    return targets


def sensitive_bits(model: nn.Module, data: DataSplits, hp: QuantizeStage) -> dict[str, int]:
    """Per-layer bits: the fewest (from ``hp.min_bits`` up to the recipe's ``bits`` for that layer) whose one-layer
    k-means sharing costs at most ``hp.accuracy_budget`` accuracy; then, since per-layer losses add up, the layer
    that lost most alone gets one more bit until all layers shared together stay within the budget too.

    Returns:
        ``{plain_name: bits}`` for every Linear/Conv weight.
    """
    from netpress.prune import strip

    base_model = strip(copy.deepcopy(model))
    held = _scan_set(data)
    base = evaluate(base_model, held).accuracy
    bits, top, loss = {}, {}, {}
    for ref in layer_refs(base_model):
        top[ref.name] = int(layer_value(hp.bits, ref, 8))
        bits[ref.name], loss[ref.name] = top[ref.name], 0.0
        for b in range(min(hp.min_bits, top[ref.name]), top[ref.name]):
            drop = base - _shared_accuracy(base_model, {ref.name: b}, hp, held)
            if drop <= hp.accuracy_budget:
                bits[ref.name], loss[ref.name] = b, drop
                break
    while base - _shared_accuracy(base_model, bits, hp, held) > hp.accuracy_budget:
        open_layers = [n for n in bits if bits[n] < top[n]]
        if not open_layers:
            break
        worst = max(open_layers, key=lambda n: (loss[n], -bits[n]))
        bits[worst] += 1
        loss[worst] = base - _shared_accuracy(base_model, {worst: bits[worst]}, hp, held)
    return bits


def _shared_accuracy(model: nn.Module, bits: dict[str, int], hp: QuantizeStage, held) -> float:
    from netpress.quantize import share_weights

    trial = copy.deepcopy(model)
    share_weights(trial, bits=bits, init=hp.init, names=list(bits))
    return evaluate(trial, held).accuracy
