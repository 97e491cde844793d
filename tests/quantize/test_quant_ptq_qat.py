"""PTQ (weights + activations, bias correction), activation observers, QAT, binary and ternary weights."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from netpress.errors import ConfigError, NetpressError
from netpress.models import ModelHparams, build_model
from netpress.quantize import (PTQHparams, QATHparams, UniformSpec, activation_quantizers, add_activation_quantizers,
                               binarize, calibrate_activations, export_codes, prepare_qat, ptq, strip_quantization,
                               ternarize)
from netpress.train import TrainingHparams, evaluate, train


@pytest.fixture(scope="module")
def trained(synthetic):
    torch.manual_seed(0)
    net = build_model(ModelHparams("lenet300"), synthetic.input_shape, synthetic.num_classes, seed=0)
    train(net, synthetic, TrainingHparams(steps="2ep"), progress=False, device="cpu")
    return net


def _weights_match_codes(model):
    codes = export_codes(model)
    assert codes
    for name, c in codes.items():
        assert torch.equal(c.decode(), model.get_submodule(name.rpartition(".")[0]).weight), name


def test_ptq_w8a8_close_to_float_and_codes_exact(trained, synthetic):
    float_acc = evaluate(trained, synthetic.test).accuracy
    model = ptq(copy.deepcopy(trained), synthetic, PTQHparams(w_bits=8, a_bits=8))
    assert abs(evaluate(model, synthetic.test).accuracy - float_acc) <= 0.01
    assert len(activation_quantizers(model)) == 3
    _weights_match_codes(model)


def test_static_observer_range_matches_torch_minmax_observer():
    x = torch.randn(64, 10) * 3 + 1
    lin = nn.Linear(10, 2)
    add_activation_quantizers(lin, UniformSpec(bits=8, symmetric=False, signed=False), layers=[""])
    from netpress.data import TensorData

    calibrate_activations(lin, TensorData(x, torch.zeros(64)), examples=64, batch_size=16)
    q = lin.input_quantizer
    ref = torch.ao.quantization.MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    ref(x)
    scale, zp = ref.calculate_qparams()
    assert torch.allclose(q.scale, scale, rtol=1e-6) and int(q.zero_point) == int(zp)


def test_bias_correction_reduces_mean_output_shift(trained, synthetic):
    x = synthetic.test.x[:200]
    ref = trained(x)
    shifts = []
    for bc in (False, True):
        model = ptq(copy.deepcopy(trained), synthetic, PTQHparams(w_bits=2, a_bits=0, bias_correction=bc))
        shifts.append((model(x) - ref).mean(0).abs().mean().item())
    assert shifts[1] < shifts[0]


def test_dynamic_activations_need_no_data_static_does(trained):
    ptq(copy.deepcopy(trained), None, PTQHparams(a_mode="dynamic"))
    with pytest.raises(ConfigError, match="calibration data"):
        ptq(copy.deepcopy(trained), None, PTQHparams())
    with pytest.raises(ConfigError):
        prepare_qat(copy.deepcopy(trained), QATHparams(a_bits=8), None)
    for bad in ({"w_bits": 0}, {"w_bits": 17}, {"a_bits": -1}, {"a_mode": "sometimes"}):
        with pytest.raises(ConfigError):
            PTQHparams(**bad)


def test_uncalibrated_static_quantizer_refuses():
    lin = add_activation_quantizers(nn.Linear(3, 2), UniformSpec(bits=8, symmetric=False, signed=False), layers=[""])
    with pytest.raises(NetpressError, match="before calibration"):
        lin(torch.randn(2, 3))


@pytest.mark.parametrize("lsq", [False, True])
def test_qat_trains_and_exports_exact_codes(trained, synthetic, lsq):
    model = prepare_qat(copy.deepcopy(trained), QATHparams(w_bits=3, a_bits=8, lsq=lsq), synthetic)
    original = model.features[0].parametrizations.weight.original
    before = original.detach().clone()
    train(model, synthetic, TrainingHparams(steps="10it", lr=0.01), progress=False, device="cpu")
    after = export_codes(model)
    assert not torch.equal(original.detach(), before)  # the float weights learn through the STE
    assert all(len(torch.unique(c.decode())) <= 2 ** 3 * c.scale.numel() for c in after.values())
    _weights_match_codes(model)
    strip_quantization(model, activations=True)
    assert not export_codes(model) and not activation_quantizers(model)


@pytest.mark.parametrize("make,bits,levels", [(binarize, 1, 2), (ternarize, 2, 3)])
def test_binary_ternary_values_codes_and_ste(make, bits, levels):
    torch.manual_seed(0)
    lin = nn.Linear(20, 6)
    with torch.no_grad():
        lin.weight[:, :3] = 0  # pruned
    make(lin)
    w = lin.weight
    for row in w:
        assert len(torch.unique(row[3:])) <= levels
    assert torch.all(w[:, :3] == 0)
    codes = export_codes(lin)["weight"]
    assert codes.bits == bits and codes.codebook.shape == (6, levels) and codes.axis == 0
    assert torch.all(codes.indices[:, :3] == -1) and torch.equal(codes.decode(), w)
    lin(torch.randn(4, 20)).sum().backward()
    grad = lin.parametrizations.weight.original.grad
    assert grad is not None and grad.abs().sum() > 0  # straight-through to the float weights
