"""Zero-shot PTQ: BN-statistics and model-inversion synthesis lower their losses and read no data."""
import pytest
import torch
from torch import nn

import netpress.data
from netpress.errors import ConfigError
from netpress.quantize import PTQHparams, activation_quantizers, export_codes
from netpress.quantize.zeroshot import (ZeroShotHparams, bn_statistics_loss, inversion_loss, resolve_objective,
                                       synthesize_inputs, total_variation, zeroshot_ptq)


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8),
                        nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():  # "trained" statistics far from what N(0, 1) noise produces
        net[1].running_mean.copy_(torch.tensor([0.5, -0.3, 1.0, 0.2]))
        net[1].running_var.copy_(torch.tensor([2.0, 0.5, 1.5, 0.1]))
        net[5].running_mean.uniform_(-1, 1)
        net[5].running_var.uniform_(0.2, 2)
    return net.eval()


def _loss_by_hand(net, x):
    """The ZeroQ loss recomputed from explicit intermediate activations."""
    h1 = net[0](x)
    h2 = net[4](net[3](net[2](net[1](h1))))
    total = 0.0
    for h, bn, dims in ((h1, net[1], (0, 2, 3)), (h2, net[5], (0,))):
        total += torch.linalg.vector_norm(h.mean(dims) - bn.running_mean)
        total += torch.linalg.vector_norm((h.var(dims, unbiased=False) + bn.eps).sqrt()
                                          - (bn.running_var + bn.eps).sqrt())
    return total


def test_loss_matches_hand_computation():
    net = _bn_net()
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(bn_statistics_loss(net, x), _loss_by_hand(net, x))


def test_synthesized_inputs_reduce_bn_loss_and_leave_model_alone():
    net = _bn_net()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    hp = ZeroShotHparams(examples=16, batch_size=16, iterations=60, lr=0.05)
    noise = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(hp.seed))
    x = synthesize_inputs(net, (1, 8, 8), hp)
    assert x.shape == (16, 1, 8, 8)
    with torch.no_grad():
        assert float(bn_statistics_loss(net, x)) < 0.5 * float(bn_statistics_loss(net, noise))
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("make_net, w_bits, examples, quantized", [
    (lambda: _bn_net(), 4, 8, {"0.weight", "4.weight", "7.weight"}),   # BatchNorm statistics
    (lambda: _plain_net(), 8, 10, {"0.weight", "3.weight"}),           # model inversion, no BatchNorm
])
def test_zeroshot_ptq_never_touches_data(monkeypatch, make_net, w_bits, examples, quantized):
    def boom(*a, **k):
        raise AssertionError("data was read")

    monkeypatch.setattr(torch.utils.data.DataLoader, "__iter__", boom)
    monkeypatch.setattr(netpress.data, "load_data", boom)
    net = make_net()
    zeroshot_ptq(net, (1, 8, 8), PTQHparams(w_bits=w_bits, a_bits=8, bias_correction=True),
                 ZeroShotHparams(examples=examples, batch_size=examples, iterations=5))
    qs = activation_quantizers(net)
    assert qs and all(bool(q.calibrated) for q in qs.values())
    assert set(export_codes(net)) == quantized
    net(torch.randn(2, 1, 8, 8))


def test_bn_objective_on_a_model_without_batchnorm_is_a_config_error():
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    before = net[1].weight.detach().clone()
    with pytest.raises(ConfigError, match="BatchNorm"):
        zeroshot_ptq(net, (1, 8, 8), zs=ZeroShotHparams(objective="bn"))
    assert torch.equal(net[1].weight, before) and not activation_quantizers(net)
    with pytest.raises(ConfigError, match="unknown zero-shot objective"):
        ZeroShotHparams(objective="dreams")


def _plain_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()


def test_auto_objective_picks_bn_or_inversion():
    assert resolve_objective(_bn_net(), ZeroShotHparams()) == "bn"
    assert resolve_objective(_plain_net(), ZeroShotHparams()) == "inversion"
    assert resolve_objective(_bn_net(), ZeroShotHparams(objective="inversion")) == "inversion"


def test_inversion_loss_matches_hand_computation():
    net, x, y = _plain_net(), torch.randn(6, 1, 8, 8), torch.arange(6) % 5
    logits = net(x)
    ce = -(logits.log_softmax(1)[torch.arange(6), y]).mean()
    tv = ((x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean() + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean())
    want = ce + 0.3 * tv + 0.2 * (x ** 2).mean()
    torch.testing.assert_close(inversion_loss(net, x, y, tv_weight=0.3, l2_weight=0.2), want)
    assert float(total_variation(torch.randn(4, 7))) == 0.0  # no spatial axes: no TV term


def test_inversion_of_a_linear_softmax_reaches_its_closed_form_optimum():
    """Linear model, no TV: the objective is convex in x with the optimum where grad = W^T (p - e_y)/n + 2 l x/n = 0;
    the synthesized inputs reach that stationary point and each is assigned its target class."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 3))
    hp = ZeroShotHparams(examples=6, batch_size=6, iterations=1500, lr=0.05, tv_weight=0.0, l2_weight=0.05)
    x = synthesize_inputs(net, (4,), hp)
    y = torch.arange(6) % 3
    assert torch.equal(net(x).argmax(1), y)
    p = net(x).softmax(1).detach()
    grad = (p - nn.functional.one_hot(y, 3)) @ net[0].weight.detach() / 6 + 2 * 0.05 * x / x.numel()
    assert float(grad.abs().max()) < 1e-4


def test_inversion_reduces_its_objective_and_leaves_model_alone():
    net = _plain_net()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    hp = ZeroShotHparams(examples=10, batch_size=10, iterations=40, lr=0.1)
    noise = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(hp.seed))
    x = synthesize_inputs(net, (1, 8, 8), hp)
    y = torch.arange(10) % 5
    with torch.no_grad():
        assert float(inversion_loss(net, x, y)) < 0.5 * float(inversion_loss(net, noise, y))
    assert torch.equal(net(x).argmax(1), y)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


class _Untouchable(torch.utils.data.Dataset):
    """A dataset that fails the test on any access."""

    def __len__(self):
        raise AssertionError("dataset length read")

    def __getitem__(self, i):
        raise AssertionError("dataset read")


def test_quantize_model_zero_shot_reads_only_the_input_shape():
    from netpress.data import DataSplits
    from netpress.quantize.methods import QuantizeHparams, quantize_model

    splits = DataSplits(_Untouchable(), _Untouchable(), _Untouchable(), num_classes=5, input_shape=(1, 8, 8))
    net = _plain_net()
    extra = quantize_model(net, QuantizeHparams(method="ptq", w_bits=8, a_bits=8, zero_shot=True), splits)
    assert extra == {"calibration": "zero-shot"}
    assert all(bool(q.calibrated) for q in activation_quantizers(net).values())
    with pytest.raises(AssertionError, match="dataset"):  # the same splits do fail data-calibrated PTQ
        quantize_model(_plain_net(), QuantizeHparams(method="ptq"), splits)


def test_input_range_bounds_every_synthesized_input():
    from netpress.data import input_range

    lo, hi = input_range("fashion-mnist")
    assert (lo, hi) == pytest.approx((-0.2860 / 0.3530, 0.7140 / 0.3530)) and input_range("synthetic") is None
    net = _plain_net()
    hp = ZeroShotHparams(examples=10, batch_size=10, iterations=40, lr=0.1, input_range=(lo, hi))
    x = synthesize_inputs(net, (1, 8, 8), hp)
    free = synthesize_inputs(net, (1, 8, 8), hp.replace(input_range=None))
    assert float(x.min()) >= lo - 1e-6 and float(x.max()) <= hi + 1e-6  # float32 bounds
    assert float(free.min()) < lo or float(free.max()) > hi  # the bound is what keeps them inside
    assert torch.equal(net(x).argmax(1), torch.arange(10) % 5)
    with pytest.raises(ConfigError, match="input_range"):
        ZeroShotHparams(input_range=(1.0, 0.0))


def test_quantize_model_bounds_zero_shot_inputs_by_the_datasets_pixel_range(monkeypatch):
    import netpress.quantize.methods as methods
    from netpress.data import DataSplits, input_range

    seen = {}
    monkeypatch.setattr(methods, "zeroshot_ptq", lambda model, shape, hp, zs, **kw: seen.update(zs=zs, shape=shape))
    splits = DataSplits(_Untouchable(), None, _Untouchable(), num_classes=5, input_shape=(1, 8, 8), name="mnist")
    methods.quantize_model(_plain_net(), methods.QuantizeHparams(method="ptq", zero_shot=True), splits)
    assert seen["zs"].input_range == input_range("mnist") and seen["shape"] == (1, 8, 8)
