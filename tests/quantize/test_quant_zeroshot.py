"""Zero-shot PTQ: BN-statistics synthesis lowers its loss, reads no data, and refuses models without BatchNorm."""
import pytest
import torch
from torch import nn

import netpress.data
from netpress.errors import ConfigError
from netpress.quantize import PTQHparams, activation_quantizers, export_codes
from netpress.quantize.zeroshot import ZeroShotHparams, bn_statistics_loss, synthesize_inputs, zeroshot_ptq


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


def test_zeroshot_ptq_never_touches_data(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("data was read")

    monkeypatch.setattr(torch.utils.data.DataLoader, "__iter__", boom)
    monkeypatch.setattr(netpress.data, "load_data", boom)
    net = _bn_net()
    zeroshot_ptq(net, (1, 8, 8), PTQHparams(w_bits=4, a_bits=8, bias_correction=True),
                 ZeroShotHparams(examples=8, batch_size=8, iterations=5))
    qs = activation_quantizers(net)
    assert qs and all(bool(q.calibrated) for q in qs.values())
    assert set(export_codes(net)) == {"0.weight", "4.weight", "7.weight"}
    net(torch.randn(2, 1, 8, 8))


def test_model_without_batchnorm_is_a_config_error():
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    before = net[1].weight.detach().clone()
    with pytest.raises(ConfigError, match="BatchNorm"):
        zeroshot_ptq(net, (1, 8, 8))
    assert torch.equal(net[1].weight, before) and not activation_quantizers(net)
