"""The trainer against a hand-written torch loop (the reference), and its block-wise divergence check."""
import copy

import pytest
import torch
from torch import nn

from netpress.data import batches, epoch_order, iterations_per_epoch
from netpress.models import ModelHparams, build_model
from netpress.train import TrainingDiverged, TrainingHparams, make_optimizer, train
from netpress.train.schedule import lr_multiplier


def _bare_loop(model, data, hp, steps):
    """What the trainer should do, written plainly with an unfused torch optimizer."""
    opt = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[hp.optimizer]
    kw = {"momentum": hp.momentum} if hp.optimizer == "sgd" else {}
    opt = opt(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, foreach=False, **kw)
    ipe = iterations_per_epoch(len(data.train), hp.batch_size)
    factor, it = lr_multiplier(hp, ipe), 0
    while it < steps:
        for batch in batches(data.train, hp.batch_size, epoch_order(len(data.train), hp.order_seed, it // ipe)):
            for g in opt.param_groups:
                g["lr"] = hp.lr * factor(it)
            loss = nn.functional.cross_entropy(model(batch.x), batch.y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            it += 1
            if it == steps:
                return


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_trainer_matches_a_hand_written_loop(synthetic, optimizer):
    hp = TrainingHparams(optimizer=optimizer, lr=3e-3 if optimizer == "adam" else 0.05, batch_size=48, steps="50it",
                         eval_every="20it", lr_schedule="cosine", weight_decay=1e-4, seed=3)
    model = build_model(ModelHparams("lenet300"), synthetic.input_shape, synthetic.num_classes, seed=0)
    ref = copy.deepcopy(model)
    train(model, synthetic, hp, device="cpu")
    _bare_loop(ref, synthetic, hp, 50)
    for (name, a), b in zip(model.named_parameters(), ref.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name
    assert not torch.allclose(model.fc_out.weight, build_model(ModelHparams("lenet300"), synthetic.input_shape,
                                                                synthetic.num_classes, seed=0).fc_out.weight)


def test_optimizer_is_fused_on_cpu():
    opt = make_optimizer(nn.Linear(3, 3).parameters(), TrainingHparams(optimizer="adam"))
    assert opt.defaults["fused"] is True


def test_divergence_is_reported_at_its_first_iteration(synthetic):
    calls = []

    def nan_from_7(out, batch):
        calls.append(1)
        loss = nn.functional.cross_entropy(out, batch.y)
        return loss * float("nan") if len(calls) > 7 else loss

    model = build_model(ModelHparams("lenet300"), synthetic.input_shape, synthetic.num_classes, seed=0)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at iteration 7 "):
        train(model, synthetic, TrainingHparams(steps="200it", eval_every="100it", batch_size=32), device="cpu",
              loss_fn=nan_from_7)
    assert len(calls) == 50  # checked in blocks of 50 iterations, long before the first evaluation
