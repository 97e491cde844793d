"""Mask invariants through real training: SGD+momentum and Adam+weight decay; strip keeps outputs."""
import pytest
import torch
from torch import nn

from netpress.prune import get_masks, plain_state_dict, prune, strip
from netpress.train import TrainingHparams, train


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 4))


class Probe:
    """Checks after every optimizer step that masked weights are zero and grads are masked."""

    def __init__(self, params):
        self.params, self.steps = params, 0

    def on_step_end(self, iteration, model, optimizer):
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        assert all(id(p) in held for p in self.params)  # optimizer still holds the same Parameter objects
        for name, mask in get_masks(model).items():
            mod = model.get_submodule(name.rsplit(".", 1)[0])
            assert torch.all(mod.weight[mask == 0] == 0)
            grad = mod.parametrizations.weight.original.grad
            assert torch.all(grad[mask == 0] == 0)
        self.steps += 1


@pytest.mark.parametrize("hp", [
    TrainingHparams(optimizer="sgd", lr=0.05, momentum=0.9, steps="30it", batch_size=64),
    TrainingHparams(optimizer="adam", lr=0.01, weight_decay=0.1, steps="30it", batch_size=64),
])
def test_masks_hold_through_training(synthetic, hp):
    model = net()
    prune(model, 0.8, scope="local")
    masks = get_masks(model)
    before = [p for p in model.parameters()]
    probe = Probe(before)
    train(model, synthetic, hp, device="cpu", callbacks=[probe])
    assert probe.steps == 30
    after = get_masks(model)
    for k in masks:
        torch.testing.assert_close(after[k], masks[k])
    sd = plain_state_dict(model)
    for k, m in masks.items():
        assert torch.all(sd[k][m == 0] == 0)


def test_optimizer_made_before_pruning_keeps_working(synthetic):
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ids = [id(p) for p in model.parameters()]
    prune(model, 0.5)
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    x, y = synthetic.train.x[:32], synthetic.train.y[:32]
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for k, m in get_masks(model).items():
        assert torch.all(model.get_submodule(k.rsplit(".", 1)[0]).weight[m == 0] == 0)


def test_strip_keeps_outputs(synthetic):
    model = net()
    prune(model, 0.7)
    x = synthetic.test.x[:16]
    ref = model(x)
    out = strip(model)
    assert not get_masks(out)
    assert all(type(p) is nn.Parameter for p in out.parameters())
    torch.testing.assert_close(out(x), ref)
    assert isinstance(out[3], nn.Linear) and not hasattr(out[3], "parametrizations")


def test_strip_of_a_deepcopy_leaves_the_original_working():
    import copy
    model = net()
    prune(model, 0.5)
    x = torch.randn(2, 1, 8, 8)
    ref = model(x)
    twin = strip(copy.deepcopy(model))
    torch.testing.assert_close(twin(x), ref)
    torch.testing.assert_close(model(x), ref)  # the original still has its masks and weights
    assert get_masks(model)
