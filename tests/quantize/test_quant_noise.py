"""Quant-Noise: the quantized fraction tracks p, p=1 is full fake-quant, STE gradients, eval == exported codes."""
import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.quantize import UniformSpec, calibrate, export_codes, fake_quantize
from netpress.quantize.quant_noise import QuantNoiseWeight, quant_noise


def _full_fake_quant(w, spec):
    scale, zp = calibrate(w, spec)
    shape = (-1,) + (1,) * (w.dim() - 1) if spec.granularity == "channel" else ()
    return fake_quantize(w, scale.reshape(shape), zp.reshape(shape), spec.qmin, spec.qmax)


@pytest.mark.parametrize("block_size", [1, 8])
def test_fraction_quantized_tracks_p(block_size):
    torch.manual_seed(0)
    w = torch.randn(64, 128)
    spec = UniformSpec(bits=3)
    full = _full_fake_quant(w, spec)
    differs = full != w  # positions where quantization changes the value (almost all at 3 bits)
    q = QuantNoiseWeight(spec, p=0.3, block_size=block_size, generator=torch.Generator().manual_seed(1)).train()
    out = q(w)
    took_q = (out == full) & differs
    kept = (out == w) & differs
    assert bool((took_q | kept)[differs].all())  # each weight is either quantized or untouched
    frac = float(took_q.sum()) / float(differs.sum())
    assert abs(frac - 0.3) < 0.03
    mask = q.noise_mask(w).reshape(-1, block_size)  # whole blocks share the decision
    assert bool((mask == mask[:, :1]).all())


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_p_one_and_eval_equal_full_fake_quant(granularity):
    torch.manual_seed(2)
    w = torch.randn(6, 10)
    spec = UniformSpec(bits=4, granularity=granularity)
    full = _full_fake_quant(w, spec)
    assert torch.equal(QuantNoiseWeight(spec, p=1.0).train()(w), full)
    assert torch.equal(QuantNoiseWeight(spec, p=0.2).eval()(w), full)
    assert torch.equal(QuantNoiseWeight(spec, p=0.0).train()(w), w)


def test_gradients_flow_straight_through():
    torch.manual_seed(3)
    w = torch.randn(5, 7, requires_grad=True)
    g = torch.randn(5, 7)
    for p in (0.0, 0.5, 1.0):
        (grad,) = torch.autograd.grad((QuantNoiseWeight(UniformSpec(bits=2), p=p).train()(w) * g).sum(), [w])
        torch.testing.assert_close(grad, g)


def test_model_eval_matches_codes_and_training_is_noisy():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    float_w = net[0].weight.detach().clone()
    quant_noise(net, p=0.5, spec=UniformSpec(bits=4, granularity="channel"), block_size=4, seed=0)
    net.eval()
    codes = export_codes(net)
    assert torch.equal(codes["0.weight"].decode(), net[0].weight) and codes["0.weight"].method == "uniform"
    net.train()
    a, b = net[0].weight.detach().clone(), net[0].weight.detach().clone()
    assert not torch.equal(a, b)  # a fresh random subset each forward
    assert not torch.equal(a, float_w) and not torch.equal(a, codes["0.weight"].decode())
    loss = net(torch.randn(3, 8)).sum()
    loss.backward()
    assert net[0].parametrizations.weight.original.grad is not None


def test_bad_arguments_raise_before_change():
    net = nn.Sequential(nn.Linear(3, 5))
    with pytest.raises(ConfigError):
        quant_noise(net, p=1.5)
    with pytest.raises(ConfigError):
        quant_noise(net, p=0.5, block_size=4)  # 15 weights
    assert not hasattr(net[0], "parametrizations")


def test_prepare_qat_with_quant_noise_attaches_quant_noise_weights():
    from netpress.quantize import QATHparams, prepare_qat
    from netpress.quantize.base import quantizer_of

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    prepare_qat(net, QATHparams(w_bits=4, a_bits=0, quant_noise=0.25))
    qs = [quantizer_of(net[i], "weight")[0] for i in (0, 2)]
    assert all(isinstance(q, QuantNoiseWeight) and q.p == 0.25 and q.spec.bits == 4 for q in qs)
    assert qs[0].spec.granularity == "channel"
    with pytest.raises(ConfigError, match="quant_noise"):
        QATHparams(quant_noise=1.5)
    plain = prepare_qat(nn.Sequential(nn.Linear(8, 6)), QATHparams(w_bits=4, a_bits=0))
    assert not isinstance(quantizer_of(plain[0], "weight")[0], QuantNoiseWeight)
