"""The max recipe's sensitivity search: each choice is the most aggressive one within the budget."""
import copy

import pytest

from netpress.data import load_data
from netpress.models import build_model
from netpress.pipeline.recipe import PruneStage, QuantizeStage
from netpress.pipeline.search import SPARSITY_GRID, _scan_set, sensitive_bits, sensitive_sparsity
from netpress.prune import apply_masks, compute_masks
from netpress.quantize import share_weights
from netpress.train import TrainingHparams, evaluate, train


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")  # harder than the synthetic set, so the choices land strictly inside their ranges


@pytest.fixture(scope="module")
def trained(digits):
    model = build_model("lenet300", digits.input_shape, digits.num_classes, seed=0)
    train(model, digits, TrainingHparams(steps="3ep", batch_size=100), device="cpu")
    return model


def _drop_when_pruned(model, data, name, s):
    trial = copy.deepcopy(model)
    apply_masks(trial, compute_masks(trial, 0.0, scope="local", layer_sparsity={name: s}))
    held = _scan_set(data)
    return evaluate(model, held).accuracy - evaluate(trial, held).accuracy


def test_sparsity_is_largest_within_budget(trained, digits):
    hp = PruneStage(schedule="sensitivity", sparsity=0.98, layers={"last": 0.9}, accuracy_budget=0.01)
    targets = sensitive_sparsity(trained, digits, hp)
    assert set(targets) == {"features.0.weight", "features.2.weight", "fc_out.weight"}
    assert targets["fc_out.weight"] <= 0.9  # the per-layer cap
    assert any(0 < s < 0.9 for s in targets.values())  # the budget, not a bound, decided
    for name, s in targets.items():
        cap = 0.9 if name == "fc_out.weight" else 0.98
        if s > 0:
            assert _drop_when_pruned(trained, digits, name, s) <= hp.accuracy_budget
        bigger = [g for g in SPARSITY_GRID if s < g <= cap]
        if bigger:  # the next step up would have broken the budget
            assert _drop_when_pruned(trained, digits, name, bigger[0]) > hp.accuracy_budget


def test_bits_are_fewest_within_budget(trained, digits):
    hp = QuantizeStage(method="sensitivity", bits={"fc": 6}, min_bits=1, accuracy_budget=0.002)
    bits = sensitive_bits(trained, digits, hp)
    held = _scan_set(digits)
    base = evaluate(trained, held).accuracy
    assert any(1 < b < 6 for b in bits.values())  # the budget, not a bound, decided
    for name, b in bits.items():
        assert 1 <= b <= 6
        if b > 1:  # one bit fewer breaks the budget, alone or (after the joint correction) together
            fewer = share_weights(copy.deepcopy(trained), bits={**bits, name: b - 1}, names=list(bits))
            alone = share_weights(copy.deepcopy(trained), bits=b - 1, names=[name])
            assert (base - evaluate(alone, held).accuracy > hp.accuracy_budget
                    or base - evaluate(fewer, held).accuracy > hp.accuracy_budget)
        if b < 6:
            chosen = share_weights(copy.deepcopy(trained), bits=b, names=[name])
            assert base - evaluate(chosen, held).accuracy <= hp.accuracy_budget


def test_bits_hold_the_budget_jointly(trained, digits):
    hp = QuantizeStage(method="sensitivity", bits={"fc": 6}, min_bits=1, accuracy_budget=0.002)
    bits = sensitive_bits(trained, digits, hp)
    held = _scan_set(digits)
    together = share_weights(copy.deepcopy(trained), bits=bits, names=list(bits))
    assert evaluate(trained, held).accuracy - evaluate(together, held).accuracy <= hp.accuracy_budget


def test_joint_correction_adds_bits_where_the_loss_alone_was_largest(trained, digits, monkeypatch):
    """A closed-form accuracy model where losses add up: each layer's drop at b bits is c / 4**b. Every layer
    alone fits the budget at (3, 3, 2) bits, but together they lose 0.01875 > 0.012, so the correction must run:
    features.0 (0.0078 alone) gets a 4th bit -> 0.01289 total, still over; fc_out (0.00625) gets a 3rd -> 0.0082."""
    import netpress.pipeline.search as search

    cost = {"features.0.weight": 0.5, "features.2.weight": 0.3, "fc_out.weight": 0.1}
    monkeypatch.setattr(search, "evaluate", lambda model, data: type("R", (), {"accuracy": 1.0})())
    monkeypatch.setattr(search, "_shared_accuracy",
                        lambda model, bits, hp, held: 1.0 - sum(cost[n] / 4 ** b for n, b in bits.items()))
    hp = QuantizeStage(method="sensitivity", bits={"fc": 6}, min_bits=1, accuracy_budget=0.012)
    assert sensitive_bits(trained, digits, hp) == {"features.0.weight": 4, "features.2.weight": 3, "fc_out.weight": 3}
    monkeypatch.setattr(search, "_shared_accuracy",  # control: losses that do not add up need no correction
                        lambda model, bits, hp, held: 1.0 - max(cost[n] / 4 ** b for n, b in bits.items()))
    assert sensitive_bits(trained, digits, hp) == {"features.0.weight": 3, "features.2.weight": 3, "fc_out.weight": 2}
