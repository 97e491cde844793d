"""Pipeline stages against controls and references: distillation changes retraining (alpha=1 is plain
cross-entropy), low-rank equals a truncated SVD, a killed prune round resumes, and the ``max`` recipe end to end."""
import copy

import pytest
import torch
from torch import nn

import netpress
from netpress.encode import read_manifest
from netpress.pipeline import compress, parse_recipe
from netpress.pipeline import stages as stages_module
from netpress.prune.masks import get_masks, plain_state_dict
from netpress.train import TrainingHparams, evaluate, train

HP = TrainingHparams(steps="2ep", batch_size=100, lr=0.05)
RETRAIN = {"prune": {"schedule": "oneshot", "sparsity": 0.7, "retrain": {"steps": "1ep", "lr": 0.02}}}


def _weights(result):
    return plain_state_dict(result.model)


def _compress(trained, stages, **kw):
    model, data = trained
    return compress(copy.deepcopy(model), data, recipe=parse_recipe({"stages": stages}), train_hp=HP, device="cpu", **kw)


def test_distill_stage_changes_retraining_and_alpha_one_is_the_control(trained):
    plain = _weights(_compress(trained, [RETRAIN]))
    control = _weights(_compress(trained, [{"distill": {"alpha": 1.0}}, RETRAIN]))
    distilled = _weights(_compress(trained, [{"distill": {"alpha": 0.2, "temperature": 4}}, RETRAIN]))
    assert all(torch.equal(plain[k], control[k]) for k in plain)  # alpha=1: the hard-label loss alone
    assert not all(torch.equal(plain[k], distilled[k]) for k in plain)


def test_distill_stage_teacher_is_the_input_model(trained, monkeypatch):
    model, data = trained
    seen = []
    real_train = stages_module.train
    monkeypatch.setattr(stages_module, "train", lambda *a, **k: (seen.append(k["loss_fn"]), real_train(*a, **k))[1])
    _compress(trained, [{"distill": {"alpha": 0.0, "temperature": 2}}, RETRAIN])
    from netpress.distill import kd_loss
    from netpress.data import Batch

    (loss_fn,) = seen
    x, y = data.train.x[:50], data.train.y[:50]
    student = torch.randn(50, data.num_classes)
    with torch.no_grad():
        expected = kd_loss(student, model(x), y, temperature=2, alpha=0.0)
        got = loss_fn(student, Batch(x, y, torch.arange(50)))
    torch.testing.assert_close(got, expected)


def test_lowrank_stage_equals_truncated_svd(trained):
    model, data = trained
    result = _compress(trained, [{"lowrank": {"energy": 0.6}}])
    x = data.test.x[:64]
    reference = copy.deepcopy(model)  # each factorized Linear replaced by its truncated SVD, computed here
    factorized = []
    for name, layer in model.named_modules():
        if not isinstance(layer, nn.Linear) or isinstance(result.model.get_submodule(name), nn.Linear):
            continue
        u, s, vh = torch.linalg.svd(layer.weight.detach().double(), full_matrices=False)
        energy = torch.cumsum(s ** 2, 0) / (s ** 2).sum()
        k = int((energy < 0.6).sum()) + 1
        with torch.no_grad():
            reference.get_submodule(name).weight.copy_((u[:, :k] * s[:k]) @ vh[:k])
        factorized.append((name, k))
    assert "features.0" in dict(factorized)  # the 300 x 64 layer is worth factorizing at 60% energy
    params = sum(p.numel() for p in result.model.parameters())
    assert params < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(result.model.eval()(x), reference.eval()(x), rtol=1e-4, atol=1e-4)
    assert result.rows[-1]["bytes"] < result.rows[0]["bytes"]


class Killed(Exception):
    pass


def test_killed_prune_round_resumes_to_the_same_model(trained, tmp_path, monkeypatch):
    stages = [{"prune": {"schedule": "iterative", "rounds": 3, "sparsity": 0.8, "retrain": {"steps": "1ep"}}}]
    reference = _weights(_compress(trained, stages))
    real_train, calls = stages_module.train, []

    def dying_train(*args, **kwargs):
        calls.append(kwargs["desc"])
        if len(calls) == 3:
            raise Killed
        return real_train(*args, **kwargs)

    monkeypatch.setattr(stages_module, "train", dying_train)
    work = tmp_path / "work"
    with pytest.raises(Killed):
        _compress(trained, stages, workdir=work)
    assert (work / "00_prune" / "round2" / "done").exists() and not (work / "00_prune" / "round3").exists()
    calls.clear()
    monkeypatch.setattr(stages_module, "train", lambda *a, **k: (calls.append(k["desc"]), real_train(*a, **k))[1])
    resumed = _weights(_compress(trained, stages, workdir=work))
    assert calls == ["prune round 3/3"]  # rounds 1 and 2 were restored, not re-run
    for k in reference:
        assert torch.equal(reference[k], resumed[k]), k


def test_max_recipe_end_to_end_on_digits(digits_model, tmp_path):
    model, data = digits_model
    dense_acc = evaluate(model, data.test).accuracy
    out = tmp_path / "max.netp"
    hp = TrainingHparams(steps="4ep", batch_size=50, lr=0.05)
    result = compress(copy.deepcopy(model), data, recipe="max", train_hp=hp, out=out, device="cpu")
    assert [r["stage"] for r in result.rows] == ["dense", "distill", "prune", "quantize", "encode"]
    dense, _, pruned, quantized, encoded = result.rows
    targets, bits = result.notes["prune_targets"], result.notes["bits"]
    for name, w in result.final_weights.items():  # the searched sparsity and bits are what the file holds
        assert float((w == 0).float().mean()) == pytest.approx(targets[name], abs=0.01), name
        assert 3 <= bits[name] <= 6 and len(torch.unique(w[w != 0])) <= 2 ** bits[name], name
    assert 0.5 < pruned["sparsity"] < 0.99 and max(targets.values()) > min(targets.values())
    assert encoded["bytes"] == out.stat().st_size and encoded["ratio"] > 20
    assert encoded["test_accuracy"] >= dense_acc - 0.03 and dense_acc > 0.95
    manifest = read_manifest(out)
    assert manifest["recipe"]["name"] == "max"
    loaded = netpress.load(out)
    with torch.no_grad():
        assert torch.equal(loaded(data.test.x), result.model.eval()(data.test.x))
