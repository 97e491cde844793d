"""PTQ on sequence models: bias correction on any activation rank, validation before change, W8A8 file round trip."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import netpress
from netpress.encode.api import read_manifest
from netpress.data.base import TensorData
from netpress.errors import ConfigError
from netpress.quantize import PTQHparams, activation_quantizers, ptq


class SeqNet(nn.Module):
    """Linear layers over [batch, seq, features] plus a Conv1d over [batch, channels, seq]."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(6, 12)
        self.conv = nn.Conv1d(12, 12, 3, padding=1, groups=3)
        self.out = nn.Linear(12, 5)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        h = torch.relu(self.conv(h.transpose(1, 2))).transpose(1, 2)
        return self.out(h)


def seq_data(n=40, seq=7):
    g = torch.Generator().manual_seed(0)
    return TensorData(torch.randn(n, seq, 6, generator=g) + 0.5, torch.zeros(n, dtype=torch.long))


def test_bias_correction_on_3d_activations_matches_hand_computation():
    torch.manual_seed(0)
    net, data = SeqNet(), seq_data()
    ref = copy.deepcopy(net)
    with torch.no_grad():  # the float model's layer inputs, by hand
        x = data.x
        h1 = torch.relu(ref.inp(x))
        h2 = torch.relu(ref.conv(h1.transpose(1, 2))).transpose(1, 2)
    means = {"inp": x.reshape(-1, 6).mean(0), "conv": h1.reshape(-1, 12).mean(0), "out": h2.reshape(-1, 12).mean(0)}
    hp = PTQHparams(w_bits=3, a_bits=0, bias_correction=True, calibration_examples=len(data))
    q = ptq(copy.deepcopy(net), data, hp)
    for layer in ("inp", "out"):
        dw = getattr(q, layer).weight.detach() - getattr(ref, layer).weight.detach()
        want = getattr(ref, layer).bias.detach() - dw @ means[layer]
        assert torch.allclose(getattr(q, layer).bias, want, atol=1e-5), layer
    dw = (q.conv.weight.detach() - ref.conv.weight.detach()).sum(-1)  # [12 out, 4 in per group]
    shift = torch.cat([dw[4 * g:4 * g + 4] @ means["conv"][4 * g:4 * g + 4] for g in range(3)])
    assert torch.allclose(q.conv.bias, ref.conv.bias.detach() - shift, atol=1e-5)
    assert not torch.allclose(q.inp.bias, ref.inp.bias)  # the correction did something


def test_bias_correction_mismatch_fails_before_any_change():
    class Transposed(nn.Linear):  # a Linear subclass that stores its weight [in, out]
        def forward(self, x):
            return x @ self.weight + self.bias

    net = nn.Sequential(nn.Linear(6, 6), Transposed(4, 6))
    net[1].weight = nn.Parameter(torch.randn(6, 4))
    net[1].bias = nn.Parameter(torch.zeros(4))
    data = seq_data()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ConfigError, match="1.weight takes 4 input features .* has 6"):
        ptq(net, data, PTQHparams(w_bits=4, a_bits=0, bias_correction=True))
    after = net.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)


def test_w8a8_file_loads_into_a_fresh_model_bit_identical(tmp_path):
    torch.manual_seed(0)
    net, data = SeqNet(), seq_data()
    q = ptq(net, data, PTQHparams(w_bits=8, a_bits=8, calibration_examples=len(data)))
    assert len(activation_quantizers(q)) == 3
    path = tmp_path / "w8a8.netp"
    netpress.save(q, path)
    manifest = read_manifest(path)
    torch.manual_seed(1)
    fresh = netpress.load(path, model=SeqNet())
    assert set(activation_quantizers(fresh)) == {"inp", "conv", "out"}
    x = seq_data(8).x
    with torch.no_grad():
        assert torch.equal(fresh(x), q.eval()(x))
    assert manifest["activation_quantizers"]["inp"]["bits"] == 8


def test_load_of_a_file_with_activation_quantizers_into_a_wrong_model_leaves_it_untouched(tmp_path):
    torch.manual_seed(0)
    q = ptq(SeqNet(), seq_data(), PTQHparams(w_bits=8, a_bits=8, calibration_examples=40))
    path = tmp_path / "w8a8.netp"
    netpress.save(q, path)
    other = SeqNet()
    other.out = nn.Linear(12, 4)
    with pytest.raises(ConfigError):
        netpress.load(path, model=other)
    assert not activation_quantizers(other)
