"""Rethinking-the-value-of-pruning control: scratch arm = fresh init of the same masks; both arms keep masks."""
import torch
from torch import nn

from netpress.lottery.rethinking import rethinking_control, scratch_init
from netpress.prune import apply_masks, get_masks
from netpress.train import TrainingHparams


def _arch():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))


def _pruned():
    torch.manual_seed(5)
    net = _arch()
    masks = {n: (getattr(net, "1" if n.startswith("1") else "3").weight.abs() > 0.05).float()
             for n in ("1.weight", "3.weight")}
    return apply_masks(net, masks)


def test_scratch_init_is_a_fresh_seeded_init_with_the_same_masks():
    pruned = _pruned()
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    fresh = scratch_init(pruned, seed=11)
    torch.manual_seed(11)
    oracle = _arch()  # the architecture built from scratch under the same seed
    masks = get_masks(pruned)
    assert get_masks(fresh).keys() == masks.keys()
    for i in ("1", "3"):
        torch.testing.assert_close(getattr(fresh, i).weight, getattr(oracle, i).weight * masks[f"{i}.weight"])
        torch.testing.assert_close(getattr(fresh, i).bias, getattr(oracle, i).bias)
        assert not torch.equal(getattr(fresh, i).weight, getattr(pruned, i).weight)
    assert all(torch.equal(v, before[k]) for k, v in pruned.state_dict().items())


def test_control_trains_both_arms_and_keeps_masks(data):
    pruned = _pruned()
    masks = get_masks(pruned)
    before = {k: v.clone() for k, v in pruned.state_dict().items()}
    hp = TrainingHparams(steps="40it", batch_size=64, lr=0.05, optimizer="sgd", eval_every="40it")
    res = rethinking_control(pruned, data, hp, hp.replace(steps="60it", eval_every="60it"), seed=3, device="cpu",
                             progress=False)
    assert res.finetuned.iterations == 40 and res.scratch.iterations == 60
    for model in (res.finetuned_model, res.scratch_model):
        for name, m in masks.items():
            w = getattr(model, name.split(".")[0]).weight
            assert bool((w[m == 0] == 0).all())
    assert not torch.equal(res.finetuned_model[1].weight, res.scratch_model[1].weight)
    assert all(torch.equal(v, before[k]) for k, v in pruned.state_dict().items())
    s = res.summary()
    assert s["scratch_minus_finetuned"] == s["scratch_test_accuracy"] - s["finetuned_test_accuracy"]
    assert 0 <= s["finetuned_test_accuracy"] <= 1


def test_train_from_scratch_is_rethinkings_scratch_arm(data):
    from netpress.lottery.rethinking import train_from_scratch

    torch.manual_seed(0)
    pruned = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))
    apply_masks(pruned, {"1.weight": (torch.rand(16, 64) > 0.7).float()})
    hp = TrainingHparams(steps="5it", batch_size=32, eval_every="5it")
    model, result = train_from_scratch(pruned, data, hp, seed=3, device="cpu")
    both = rethinking_control(pruned, data, hp, seed=3, device="cpu")
    assert result.final_test_accuracy == both.scratch.final_test_accuracy
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), both.scratch_model.state_dict().values()))
    assert torch.equal(get_masks(model)["1.weight"], get_masks(pruned)["1.weight"])
