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
    assert curve.barrier >= 0


def test_error_barrier_and_interpolated_state():
    assert error_barrier([0.1, 0.4, 0.2]) == pytest.approx(0.25)
    assert error_barrier([0.2, 0.1, 0.2]) == pytest.approx(0.0)
    mid = interpolate_state({"w": torch.zeros(2)}, {"w": torch.ones(2)}, 0.25)
    assert torch.allclose(mid["w"], torch.full((2,), 0.25))
