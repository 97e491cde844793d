import copy

import pytest
import torch

from netpress.lottery import error_barrier, interpolate_state, linear_interpolation
from netpress.models import build_model
from netpress.prune import apply_masks


def test_barrier_of_two_identical_models_is_zero(data):
    net = build_model("lenet300", data.input_shape, data.num_classes, seed=0)
    curve = linear_interpolation(net, copy.deepcopy(net), data.test, points=7)
    assert len(curve.errors) == 7 and curve.alphas[0] == 0 and curve.alphas[-1] == 1
    assert curve.barrier == 0.0
    assert max(curve.errors) == min(curve.errors)


def test_endpoints_are_the_two_models_and_masks_are_kept(data):
    a = build_model("lenet300", data.input_shape, data.num_classes, seed=0)
    b = build_model("lenet300", data.input_shape, data.num_classes, seed=1)
    mask = {"features.0.weight": (torch.rand(300, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()}
    apply_masks(a, mask)
    apply_masks(b, mask)
    from netpress.train import evaluate

    curve = linear_interpolation(a, b, data.test, points=5)
    assert curve.errors[0] == pytest.approx(1 - evaluate(a, data.test).accuracy)
    assert curve.errors[-1] == pytest.approx(1 - evaluate(b, data.test).accuracy)


def test_error_barrier_and_interpolated_state():
    assert error_barrier([0.1, 0.4, 0.2]) == pytest.approx(0.25)
    assert error_barrier([0.2, 0.1, 0.2]) == pytest.approx(0.0)
    mid = interpolate_state({"w": torch.zeros(2)}, {"w": torch.ones(2)}, 0.25)
    assert torch.allclose(mid["w"], torch.full((2,), 0.25))


class TwoUnits(torch.nn.Module):
    """logits = V relu(W x) + b: swapping the two hidden units (rows of W, columns of V) keeps the function."""

    def __init__(self, w, v, b):
        super().__init__()
        self.hidden, self.out = torch.nn.Linear(2, 2, bias=False), torch.nn.Linear(2, 2)
        with torch.no_grad():
            self.hidden.weight.copy_(w)
            self.out.weight.copy_(v)
            self.out.bias.copy_(b)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def test_permuted_twins_have_the_known_barrier():
    """Endpoints: W = V = I and W = V = P (the swap), the same function, both perfect on x = e_0 -> 0, e_1 -> 1.
    At alpha the weights are A = [[1-a, a], [a, 1-a]]: e_0 gives logits (1-2a+2a^2, 2a(1-a) + eps), which ties at
    a = 0.5 where the bias eps tips both inputs to class 1: error 0.5 there, 0 elsewhere, barrier 0.5."""
    from netpress.data import TensorData

    eye, swap, bias = torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0.0, 0.1])
    a, b = TwoUnits(eye, eye, bias), TwoUnits(swap, swap, bias)
    data = TensorData(torch.eye(2).repeat(5, 1), torch.tensor([0, 1]).repeat(5))
    curve = linear_interpolation(a, b, data, points=5)
    assert curve.alphas == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve.errors == [0.0, 0.0, 0.5, 0.0, 0.0] and curve.barrier == 0.5
    for alpha, loss in zip(curve.alphas, curve.losses):  # the loss bump in closed form
        mix = (1 - alpha) * eye + alpha * swap
        logits = torch.relu(data.x @ mix.T) @ mix.T + bias
        assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, data.y).item(), rel=1e-6)
    assert max(curve.losses) == curve.losses[2] > curve.losses[0]
