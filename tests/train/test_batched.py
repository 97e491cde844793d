"""Batched training equals training the models one by one (weights, curves, early stopping), masks included."""
import copy

import pytest
import torch

import netpress.train.batched as batched
from netpress.errors import ConfigError
from netpress.models import ModelHparams, build_model
from netpress.prune import apply_masks, get_masks
from netpress.train import TrainingHparams, train
from netpress.train.batched import train_batched

HP = TrainingHparams(optimizer="adam", lr=2e-3, batch_size=64, steps="40it", eval_every="10it")


def _models(data, n=3, masked=True):
    models = []
    for s in range(n):
        m = build_model(ModelHparams("lenet300"), data.input_shape, data.num_classes, seed=s)
        if masked:  # a different random mask per model, as replicates and random-mask controls have
            g = torch.Generator().manual_seed(100 + s)
            apply_masks(m, {n: (torch.rand(p.shape, generator=g) > 0.4).float()
                            for n, p in m.named_parameters() if n.endswith("weight")})
        models.append(m)
    return models


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_batched_equals_sequential(synthetic, strategy, optimizer):
    hps = [HP.replace(optimizer=optimizer, seed=s, lr_schedule="cosine", weight_decay=1e-4) for s in range(3)]
    models = _models(synthetic)
    seq = [copy.deepcopy(m) for m in models]
    want = [train(m, synthetic, h, device="cpu", snapshot_at=["20it"]) for m, h in zip(seq, hps)]
    got = train_batched(models, synthetic, hps, device="cpu", snapshot_at=["20it"], strategy=strategy)
    for m, s, g, w in zip(models, seq, got, want):
        for (name, a), (_, b) in zip(m.state_dict().items(), s.state_dict().items()):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), name
        assert torch.equal(get_masks(m)["features.0.weight"], get_masks(s)["features.0.weight"])
        assert g.best_iteration == w.best_iteration and g.iterations == w.iterations == 40
        assert [r["iteration"] for r in g.metrics] == [10, 20, 30, 40]
        for a, b in zip(g.metrics, w.metrics):
            assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=1 / 400 + 1e-9)
            assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
        snap_g, snap_w = g.snapshots[20], w.snapshots[20]
        assert all(torch.allclose(snap_g[k], snap_w[k], rtol=1e-4, atol=1e-5) for k in snap_w)
    # the models really differ from each other (different seeds, orders and masks), so the match is not trivial
    assert not torch.allclose(models[0].state_dict()["fc_out.bias"], models[1].state_dict()["fc_out.bias"])


def test_start_iteration_and_data_order_seed(synthetic):
    hps = [HP.replace(seed=0, data_order_seed=7), HP.replace(seed=0, data_order_seed=8)]
    models = _models(synthetic, n=2, masked=False)
    seq = [copy.deepcopy(m) for m in models]
    for m, h in zip(seq, hps):
        train(m, synthetic, h, device="cpu", start_iteration=15)
    train_batched(models, synthetic, hps, device="cpu", start_iteration=15)
    for m, s in zip(models, seq):
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(m.parameters(), s.parameters()))


class _Killed(KeyboardInterrupt):
    pass


def test_killed_batched_run_resumes_to_the_same_weights(synthetic, tmp_path, monkeypatch):
    hps = [HP.replace(seed=s) for s in range(2)]
    ref = _models(synthetic, n=2)
    train_batched(ref, synthetic, hps, device="cpu")
    real_save, saves = batched._save, []

    def dying_save(*args):
        real_save(*args)
        saves.append(1)
        if len(saves) == 2:
            raise _Killed()

    monkeypatch.setattr(batched, "_save", dying_save)
    with pytest.raises(_Killed):
        train_batched(_models(synthetic, n=2), synthetic, hps, device="cpu", checkpoint_dir=tmp_path)
    monkeypatch.setattr(batched, "_save", real_save)
    models = _models(synthetic, n=2)
    res = train_batched(models, synthetic, hps, device="cpu", checkpoint_dir=tmp_path)
    assert res[0].resumed_from == 20 and [r["iteration"] for r in res[1].metrics] == [10, 20, 30, 40]
    for m, r in zip(models, ref):
        assert all(torch.equal(a, b) for a, b in zip(m.parameters(), r.parameters()))


def test_unbatchable_inputs_are_config_errors(synthetic):
    models = _models(synthetic, n=2)
    with pytest.raises(ConfigError, match="differ from hparams 0 in 'lr'"):
        train_batched(models, synthetic, [HP, HP.replace(lr=0.1)])
    other = build_model(ModelHparams("lenet300"), synthetic.input_shape, synthetic.num_classes, seed=0)
    with pytest.raises(ConfigError, match="model 1 differs"):
        train_batched([models[0], other], synthetic, [HP, HP])
    with pytest.raises(ConfigError, match="one hparams per model"):
        train_batched(models, synthetic, [HP])
    with pytest.raises(ConfigError, match="unknown strategy"):
        train_batched(models, synthetic, [HP, HP], strategy="magic")
