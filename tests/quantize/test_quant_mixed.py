"""Mixed precision: sensitivity falls with bits; the allocation is the exact knapsack optimum and fits the budget."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.models import ModelHparams, build_model
from netpress.quantize import Sensitivity, allocate_bits, apply_plan, bit_sensitivity, export_codes


def test_sensitivity_and_plan_on_a_model(synthetic):
    from netpress.train import TrainingHparams, train

    net = build_model(ModelHparams("lenet300"), synthetic.input_shape, synthetic.num_classes, seed=0)
    train(net, synthetic, TrainingHparams(steps="2ep"), progress=False, device="cpu")
    sens = bit_sensitivity(net, synthetic, bits=(2, 8), examples=128)
    assert sum(d[2] for d in sens.delta.values()) > sum(d[8] for d in sens.delta.values())
    budget = sum(p * 4 / 8 for p in sens.params.values())
    plan = allocate_bits(sens, budget)
    assert plan.total_bytes <= budget and "layer" in plan.table()
    apply_plan(net, plan)
    assert {k: c.bits for k, c in export_codes(net).items()} == plan.bits


def test_allocation_is_brute_force_optimum():
    torch.manual_seed(0)
    params = {"a": 1000, "b": 300, "c": 50}
    delta = {n: {b: float(torch.rand(1)) / b for b in (2, 4, 8)} for n in params}
    sens = Sensitivity(1.0, delta, params)
    budget = 1000 * 4 / 8 + 300 * 8 / 8 + 50 * 2 / 8
    plan = allocate_bits(sens, budget, resolution=10_000)
    best = min((sum(delta[n][b] for n, b in zip(params, combo)), combo)
               for combo in itertools.product((2, 4, 8), repeat=3)
               if sum(params[n] * b / 8 for n, b in zip(params, combo)) <= budget * (1 - 1e-3))
    assert plan.predicted_loss - 1.0 == pytest.approx(best[0])
    with pytest.raises(ConfigError, match="budget"):
        allocate_bits(sens, 10)
