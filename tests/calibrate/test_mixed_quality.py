"""Mixed precision from a quality function or a Hessian proxy (no labels), fractional budgets, density, and the
plan applied with GPTQ."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from netpress.calibrate import OutputQuality, capture, layer_hessians, oneshot
from netpress.errors import ConfigError
from netpress.quantize import GPTQHparams, Sensitivity, UniformSpec, allocate_bits, bit_sensitivity, export_codes
from netpress.quantize import quantize_weights
from netpress.quantize.gptq import gptq_codes, output_error


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))


def test_quality_sensitivity_equals_quantizing_each_layer_alone():
    net, x = mlp(), torch.randn(128, 12)
    before = copy.deepcopy(net.state_dict())
    quality = OutputQuality(net, [x], loss="mse")
    spec = UniformSpec(granularity="channel")
    sens = bit_sensitivity(net, bits=(2, 4, 8), quality=quality, spec=spec)
    assert sens.kind == "quality" and sens.base_loss == 0
    for name in ("0.weight", "2.weight", "4.weight"):
        for b in (2, 4, 8):
            expected = quality(quantize_weights(copy.deepcopy(net), spec.replace(bits=b), names=[name]))
            assert sens.delta[name][b] == pytest.approx(expected, rel=1e-6, abs=1e-12)
        assert sens.delta[name][2] > sens.delta[name][4] > sens.delta[name][8] >= 0
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # model left as it was


def test_hessian_proxy_sensitivity():
    net, x = mlp(), torch.randn(128, 12)
    hs = layer_hessians(net, [x], dtype=torch.float64)
    direct = capture(net, [x], {"a": net[2]}, dtype=torch.float64)["a"].hessian
    assert torch.allclose(hs["2.weight"], direct)
    sens = bit_sensitivity(net, bits=(2, 3, 8), hessians=hs)
    w, h = net[2].weight.detach(), hs["2.weight"]
    assert sens.delta["2.weight"][3] == pytest.approx(output_error(w, gptq_codes(w, h, GPTQHparams(
        bits=3, symmetric=True)).decode(), h))
    assert all(d[2] > d[3] > d[8] for d in sens.delta.values())
    with pytest.raises(ConfigError, match="no Hessian"):
        bit_sensitivity(net, bits=(2,), hessians={"0.weight": hs["0.weight"]})
    with pytest.raises(ConfigError, match="labelled data"):
        bit_sensitivity(net, bits=(2,))


def test_fractional_average_budget_with_density_is_the_brute_force_optimum():
    torch.manual_seed(0)
    params = {"a": 1000, "b": 300, "c": 50}
    delta = {n: {b: float(torch.rand(1)) / b for b in (2, 3, 4, 8)} for n in params}
    sens = Sensitivity(0.0, delta, params, "quality")
    density = {"a": 0.5}
    kept = {"a": 500, "b": 300, "c": 50}
    plan = allocate_bits(sens, avg_bits=3.5, density=density, resolution=20_000)
    budget = sum(kept.values()) * 3.5 / 8
    assert plan.budget_bytes == pytest.approx(budget) and plan.total_bytes <= budget
    best = min(sum(delta[n][b] for n, b in zip(params, combo))
               for combo in itertools.product((2, 3, 4, 8), repeat=3)
               if sum(kept[n] * b / 8 for n, b in zip(params, combo)) <= budget * (1 - 1e-3))
    assert plan.predicted_loss == pytest.approx(best)
    assert len(set(plan.bits.values())) > 1  # a genuinely mixed plan
    with pytest.raises(ConfigError, match="exactly one"):
        allocate_bits(sens, 100, avg_bits=3)
    with pytest.raises(ConfigError, match="density"):
        allocate_bits(sens, avg_bits=3, density={"a": 0})


def test_plan_applied_with_gptq():
    net, x = mlp(), torch.randn(256, 12)
    quality = OutputQuality(net, [x])
    sens = bit_sensitivity(net, bits=(2, 3, 4, 6), quality=quality)
    plan = allocate_bits(sens, avg_bits=3.5)
    mixed = oneshot(copy.deepcopy(net), [x], quantize={n: GPTQHparams(bits=b) for n, b in plan.bits.items()})
    assert {n: c.bits for n, c in export_codes(mixed).items()} == plan.bits
    uniform3 = oneshot(copy.deepcopy(net), [x], quantize=GPTQHparams(bits=3))
    assert mixed.netpress_oneshot["quality"] < uniform3.netpress_oneshot["quality"]
    with pytest.raises(ConfigError, match="missing"):
        oneshot(copy.deepcopy(net), [x], quantize={"0.weight": GPTQHparams()}, layers=["0.weight", "2.weight"])
