"""Schedules (one-shot, iterative with retrain modes, AGP), regularisers, SET/RigL."""
import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.prune import get_masks, plain_state_dict, prune, sparsity
from netpress.prune.regularize import RegularizedLoss, RegularizerHparams, group_norms, penalty
from netpress.prune.schedules import AGP, iterative_prune, parse_schedule, round_targets
from netpress.prune.sparse_training import SET, RigL
from netpress.train import TrainingHparams, train


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))


HP = TrainingHparams(lr=0.02, steps="20it", batch_size=64, eval_every="20it")


def test_round_targets_and_parse():
    t = round_targets(0.92, 3)
    assert t[-1] == pytest.approx(0.92) and all(a < b for a, b in zip(t, t[1:]))
    assert (1 - t[0]) ** 3 == pytest.approx(0.08)
    assert parse_schedule("iterative:3").rounds == 3 and parse_schedule("oneshot").kind == "oneshot"
    for bad in ("iterative:x", "agp:2", "nope"):
        with pytest.raises(ConfigError):
            parse_schedule(bad)


@pytest.mark.parametrize("mode", ["finetune", "lr-rewind", "weight-rewind"])
def test_iterative_prune_reaches_target(synthetic, mode):
    model = net()
    init = plain_state_dict(model)
    hist = iterative_prune(model, synthetic, 0.9, rounds=3, retrain_hp=HP, retrain=mode, rewind_state=init,
                           layer_sparsity={"3.weight": 0.45})
    assert [h["round"] for h in hist] == [1, 2, 3]
    assert sparsity(model, ["1.weight"]) == pytest.approx(0.9, abs=1e-3)
    assert sparsity(model, ["3.weight"]) == pytest.approx(0.45, abs=0.01)
    assert hist[-1]["test_accuracy"] > 0.5
    if mode == "weight-rewind":  # survivors were reset to init before the last retraining, so they moved from it
        m = get_masks(model)["1.weight"].bool()
        assert not torch.equal(model[1].weight[m], init["1.weight"][m])


def test_weight_rewind_needs_state(synthetic):
    with pytest.raises(ConfigError):
        iterative_prune(net(), synthetic, 0.5, retrain_hp=HP, retrain="weight-rewind")


def test_agp_cubic_and_in_training(synthetic):
    agp = AGP(0.8, start=0, end=20, every=5)
    assert agp.target(0) == 0 and agp.target(20) == pytest.approx(0.8) and agp.target(99) == pytest.approx(0.8)
    assert agp.target(10) == pytest.approx(0.8 * (1 - 0.5 ** 3))
    model = agp.attach(net())
    seen = []

    class Watch:
        def on_step_end(self, it, model, opt):
            if it % 5 == 0:
                seen.append((it, sparsity(model)))

    train(model, synthetic, HP.replace(steps="25it"), callbacks=[agp, Watch()], device="cpu")
    for it, s in seen:
        assert s == pytest.approx(agp.target(it), abs=2e-3)
    assert sparsity(model) == pytest.approx(0.8, abs=1e-3)


def test_agp_reaches_the_final_target_when_end_is_off_the_every_grid(synthetic):
    agp = AGP(0.8, start=0, end=24, every=5)  # prunes at 5, 10, 15, 20 and at 24
    model = agp.attach(net())
    train(model, synthetic, HP.replace(steps="25it"), callbacks=[agp], device="cpu")
    assert sparsity(model) == pytest.approx(0.8, abs=1e-3)


def test_agp_resume_matches_uninterrupted(synthetic, tmp_path):
    hp = HP.replace(steps="20it", eval_every="10it")
    a = AGP(0.7, start=0, end=20, every=4)
    full = a.attach(net())
    train(full, synthetic, hp, callbacks=[a], device="cpu")
    part = a.attach(net())
    train(part, synthetic, hp.replace(steps="10it"), callbacks=[a], device="cpu", checkpoint_dir=tmp_path)
    resumed = a.attach(net())
    train(resumed, synthetic, hp, callbacks=[a], device="cpu", checkpoint_dir=tmp_path)
    for k, v in plain_state_dict(full).items():
        torch.testing.assert_close(plain_state_dict(resumed)[k], v)


def test_regularisers_match_formulas_and_sparsify(synthetic):
    model = net()
    w = model[1].weight
    hp = RegularizerHparams(l1=1e-3, group_lasso=1e-2, groups="out", l2=1e-4)
    ref = sum(1e-3 * m.weight.abs().sum() + 1e-2 * m.weight.norm(dim=1).sum() + 0.5e-4 * (m.weight ** 2).sum()
              for m in (model[1], model[3]))
    torch.testing.assert_close(penalty(model, hp), ref)
    torch.testing.assert_close(group_norms(w, "in"), w.norm(dim=0))
    loss = RegularizedLoss(model, RegularizerHparams(group_lasso=0.05))
    before = group_norms(model[1].weight.detach()).sum()
    train(model, synthetic, HP.replace(steps="40it"), loss_fn=loss, device="cpu")
    assert group_norms(model[1].weight.detach()).sum() < before
    with pytest.raises(ConfigError):
        RegularizerHparams(groups="diag")


@pytest.mark.parametrize("cls", ["set", "rigl"])
def test_dynamic_sparse_training_keeps_sparsity_and_moves_masks(synthetic, cls):
    model = net()
    prune(model, 0.8, score="random", scope="local")
    before = get_masks(model)
    cb = SET(every=5, end=20) if cls == "set" else RigL(synthetic, every=5, end=20)
    train(model, synthetic, HP, callbacks=[cb], device="cpu")
    after = get_masks(model)
    for k in before:
        assert after[k].sum() == before[k].sum()
        assert not torch.equal(after[k], before[k])
        mod = model.get_submodule(k.rsplit(".", 1)[0])
        assert torch.all(mod.weight[after[k] == 0] == 0)


def test_rigl_regrows_largest_gradient(synthetic):
    model = net()
    prune(model, 0.9, scope="local")
    cb = RigL(synthetic, every=1, end=100, drop_fraction=0.1)
    masks = get_masks(model)
    grow = cb.growth_scores(model, masks, 1)["1.weight"]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cb.on_step_end(1, model, opt)
    new = get_masks(model)["1.weight"]
    grown = (new > 0) & (masks["1.weight"] == 0)
    still_dead = (new == 0) & (masks["1.weight"] == 0)
    assert grown.any() and grow[grown].min() >= grow[still_dead].max()
