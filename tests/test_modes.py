"""eval_mode: eval inside the block, and every submodule's own training flag back afterwards (also on errors)."""
import pytest
import torch
from torch import nn

from netpress.modes import eval_mode
from netpress.train import evaluate
from netpress.data.base import TensorData


def _mixed() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    net.train()
    net[1].eval()  # frozen BatchNorm inside a training model
    return net


def _flags(net: nn.Module) -> list[bool]:
    return [m.training for m in net.modules()]


def test_block_runs_in_eval_and_mixed_modes_come_back():
    net = _mixed()
    before = _flags(net)
    with eval_mode(net) as m:
        assert m is net and not any(_flags(net))
    assert _flags(net) == before and before != [True] * len(before)


def test_modes_come_back_when_the_block_raises():
    net = _mixed()
    before = _flags(net)
    with pytest.raises(RuntimeError):
        with eval_mode(net):
            raise RuntimeError("boom")
    assert _flags(net) == before


def test_evaluate_keeps_a_frozen_batchnorm_frozen():
    net = _mixed()
    before = _flags(net)
    data = TensorData(torch.randn(16, 4), torch.randint(0, 3, (16,)))
    evaluate(net, data)
    assert _flags(net) == before
