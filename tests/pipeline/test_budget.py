"""Budget-driven stages against planted oracles: the ``budget`` prune schedule keeps the sparsest round
within a planted accuracy-vs-sparsity knee, rides out a noisy round, smooths like sklearn's isotonic regression and
resumes without repeating work;
the ECSQ rate search keeps the first rate weight within the budget and quantizes with it; 8-bit biases are stored
as codes; the built-in ``budget`` recipe end to end on digits."""
import copy
import json

import pytest
import torch

import netpress
from netpress.data import load_data
from netpress.encode import read_manifest
from netpress.errors import ConfigError
from netpress.models import build_model
from netpress.pipeline import compress, load_recipe, parse_recipe
from netpress.pipeline import stages as stages_module
from netpress.pipeline.recipe import PruneStage, QuantizeStage
from netpress.pipeline.stages import Context, PruneRunner, QuantizeRunner
from netpress.quantize.ecsq import ecsq_weights
from netpress.prune.masks import plain_state_dict, sparsity
from netpress.quantize import export_codes
from netpress.train import TrainingHparams, evaluate, train

N = 2000  # planted validation examples; the input model gets them all right


def _wrong(k: int) -> torch.Tensor:
    """Planted per-example correctness with the first ``k`` of N examples wrong."""
    out = torch.ones(N, dtype=torch.bool)
    out[:k] = False
    return out


def _planted(knee: float, calls: list):
    """All right up to sparsity ``knee``, then 1 pt of accuracy lost per 0.01 of sparsity."""
    def fake_correctness(model, dataset, **kw):
        s = sparsity(model)
        calls.append(s)
        return _wrong(round(N * max(0.0, s - knee)))
    return fake_correctness


def _ctx(data, folder=None):
    return Context(data=data, train_hp=TrainingHparams(), folder=folder, device="cpu",
                   reference_correct=torch.ones(N, dtype=torch.bool))


def _prune_budget(trained, monkeypatch, folder=None, calls=None, **hp):
    model, data = trained
    calls = [] if calls is None else calls
    monkeypatch.setattr(stages_module, "correctness", _planted(0.7, calls))
    hp = {"confidence": 0.0, **hp}
    runner = PruneRunner(PruneStage(schedule="budget", scope="global", accuracy_budget=0.003, **hp))
    ctx = _ctx(data, folder)
    out = runner.run(copy.deepcopy(model), ctx, folder)
    return out, ctx.notes["budget_rounds"], calls


def test_budget_schedule_keeps_the_sparsest_round_within_the_planted_knee(trained, monkeypatch):
    model, records, _ = _prune_budget(trained, monkeypatch, prune_fraction=0.4, rounds=20)
    # path: 0.4, 0.64 (both lossless), 0.784, 0.870 (8.4 and 17 pt over: two in a row stop it); keeps 0.64
    assert [round(r["sparsity"], 3) for r in records] == [0.4, 0.64, 0.784, 0.870]
    assert [r["chosen"] for r in records] == [False, True, False, False] and records[-1]["stop"]
    assert sparsity(model) == pytest.approx(0.64, abs=1e-3)


def test_one_noisy_round_does_not_end_the_path(trained, monkeypatch):
    """Round 2 measures 0.4 pt (over a 0.3 pt budget), rounds 3-4 measure less: a greedy search would stop at
    round 1; the path goes on until two rounds in a row are over (5-6), the monotone fit pools rounds 2-4 to 0.2 pt
    and keeps round 4, the last within budget."""
    model, data = trained
    drops = [0, 8, 2, 2, 20, 30]  # examples of N wrong per round (0, 0.4, 0.1, 0.1, 1.0, 1.5 pt)
    seen = []

    def scripted(m, dataset, **kw):
        seen.append(sparsity(m))
        return _wrong(drops[len(seen) - 1])

    monkeypatch.setattr(stages_module, "correctness", scripted)
    runner = PruneRunner(PruneStage(schedule="budget", scope="global", accuracy_budget=0.003, confidence=0.0,
                                    prune_fraction=0.3, rounds=10))
    ctx = _ctx(data)
    out = runner.run(copy.deepcopy(model), ctx, None)
    records = ctx.notes["budget_rounds"]
    assert len(records) == 6 and records[-1]["stop"] and not records[1]["stop"]
    w = [1 / r["se"] ** 2 for r in records[1:4]]  # rounds 2-4 pooled, weighted by their precision
    pooled = sum(wi * r["drop"] for wi, r in zip(w, records[1:4])) / sum(w)
    assert 0.001 < pooled < 0.002
    assert [r["fitted_drop"] for r in records] == pytest.approx([0, pooled, pooled, pooled, 0.01, 0.015])
    assert records[3]["pooled_se"] == pytest.approx(sum(w) ** -0.5)
    assert [r["chosen"] for r in records] == [False, False, False, True, False, False]
    assert sparsity(out) == pytest.approx(seen[3], abs=1e-6)


def test_no_round_within_budget_leaves_the_input_model(trained, monkeypatch):
    model, records, _ = _prune_budget(trained, monkeypatch, prune_fraction=0.9, rounds=5, sparsity=0.999)
    assert len(records) == 2 and not any(r["chosen"] for r in records)  # 0.9, 0.99 > knee 0.7: 20, 29 pt over
    assert sparsity(model) == 0.0


def test_isotonic_fit_matches_sklearn():
    from sklearn.isotonic import IsotonicRegression

    from netpress.pipeline.budget import isotonic

    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(1, 15, (1,), generator=g))
        y = (torch.rand(n, generator=g) + torch.linspace(0, 1, n)).tolist()
        w = (torch.rand(n, generator=g) + 0.1).tolist()
        fit = isotonic(y, w)
        assert fit.values == pytest.approx(IsotonicRegression().fit_transform(range(n), y, sample_weight=w).tolist())
        for i in range(n):  # each point's pooled weight is its block's total weight
            block = [j for j in range(n) if abs(fit.values[j] - fit.values[i]) < 1e-12]
            assert fit.weights[i] == pytest.approx(sum(w[j] for j in block))


def test_rounds_with_equal_drops_pool_their_evidence():
    """On 300 validation examples one example (0.33 pt) outweighs a 0.3 pt budget, so no single round with an
    unchanged prediction can be trusted; four rounds that all measured no drop together can (se 1/600)."""
    from netpress.pipeline.budget import choose_round, isotonic

    chosen, fitted, pooled = choose_round([0.0] * 4, [0.0] * 4, 0.003, 1.0, floor_se=1 / 300)
    assert chosen == 3 and fitted == [0.0] * 4 and pooled == pytest.approx([1 / 600] * 4)
    assert choose_round([0.0], [0.0], 0.003, 1.0, floor_se=1 / 300)[0] == -1
    assert isotonic([0.1, 0.1, 0.3], [1.0, 2.0, 1.0]).weights == [3.0, 3.0, 1.0]


def test_confidence_adds_standard_errors_of_the_paired_drop(trained, monkeypatch):
    """A drop of 5 in 2000 (0.25 pt) is within a 0.3 pt budget, but not once one standard error of the paired
    difference (~0.11 pt) is added."""
    model, data = trained
    monkeypatch.setattr(stages_module, "correctness", lambda m, d, **kw: _wrong(5))
    ctx = _ctx(data)
    raw = ctx.budget_check(model, 0.003, confidence=0)
    strict = ctx.budget_check(model, 0.003, confidence=1)
    d = torch.cat([torch.ones(5), torch.zeros(N - 5)]).double()
    assert raw["drop"] == pytest.approx(0.0025) and raw["se"] == pytest.approx(float(d.std() / N ** 0.5))
    assert raw["within"] and not strict["within"]
    assert raw["val_accuracy"] == pytest.approx(0.9975)


def test_budget_schedule_respects_the_cap(trained, monkeypatch):
    model, records, _ = _prune_budget(trained, monkeypatch, prune_fraction=0.4, rounds=20, sparsity=0.5)
    assert sparsity(model) == pytest.approx(0.5, abs=1e-3) and records[-1]["stop"] and len(records) == 2
    assert records[-1]["chosen"]


def test_budget_schedule_resumes_without_repeating_rounds(trained, monkeypatch, tmp_path):
    first, _, calls = _prune_budget(trained, monkeypatch, folder=tmp_path / "a", prune_fraction=0.4, rounds=6)
    assert len(calls) == 4
    again, records, calls = _prune_budget(trained, monkeypatch, folder=tmp_path / "a", prune_fraction=0.4, rounds=6)
    assert calls == []  # every round replayed from its record
    a, b = plain_state_dict(first), plain_state_dict(again)
    assert all(torch.equal(a[k], b[k]) for k in a)
    stored = json.loads((tmp_path / "a" / "round4" / "record.json").read_text())
    assert stored == {k: v for k, v in records[-1].items() if k not in ("fitted_drop", "pooled_se", "chosen")}
    # cut short after two rounds, then resumed: only rounds 3-4 run, from round 2's state, and the same one is kept
    _, _, calls = _prune_budget(trained, monkeypatch, folder=tmp_path / "b", prune_fraction=0.4, rounds=2)
    assert len(calls) == 2
    resumed, records_b, calls = _prune_budget(trained, monkeypatch, folder=tmp_path / "b", prune_fraction=0.4,
                                              rounds=6)
    assert [round(c, 3) for c in calls] == [0.784, 0.870]
    assert [r["chosen"] for r in records_b] == [r["chosen"] for r in records]
    c = plain_state_dict(resumed)
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_a_ramped_budget_round_is_agp_from_the_last_rounds_sparsity(trained, monkeypatch):
    """With ``ramp`` a round's pruning is spread over its retraining: the same model as AGP (Zhu & Gupta's cubic
    ramp, from the round's starting sparsity to its target over the first half of 20 iterations) trained from the
    previous round's state; without ``ramp`` the round differs (all pruned before the retraining)."""
    from netpress.prune.schedules import AGP

    retrain = {"steps": "20it", "batch_size": 100}
    ramped, records, _ = _prune_budget(trained, monkeypatch, prune_fraction=0.4, rounds=2, ramp=0.5, retrain=retrain)
    assert [round(r["sparsity"], 3) for r in records] == [0.4, 0.64] and sparsity(ramped) == pytest.approx(0.64, abs=1e-3)
    model, data = trained
    oracle, seen = copy.deepcopy(model), []

    class Watch:
        def on_step_end(self, it, m, opt):
            seen.append(sparsity(m))

    hp = TrainingHparams().replace(**retrain)
    for start, target in [(0.0, 0.4), (0.4, 0.64)]:
        agp = AGP(target, start=0, end=10, every=1, initial=start, score="magnitude", scope="global")
        train(agp.attach(oracle), data, hp, callbacks=[agp, Watch()], device="cpu")
    a, b = plain_state_dict(ramped), plain_state_dict(oracle)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the cubic ramp: 0.4 * (1 - (1 - t / 10) ** 3) after iteration t, at the target from iteration 10
    assert seen[1] == pytest.approx(0.4 * (1 - 0.8 ** 3), abs=2e-3) and seen[4] == pytest.approx(0.35, abs=2e-3)
    assert seen[9] == pytest.approx(0.4, abs=1e-3)
    at_once, _, _ = _prune_budget(trained, monkeypatch, prune_fraction=0.4, rounds=2, retrain=retrain)
    c = plain_state_dict(at_once)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_ramped_round_killed_mid_ramp_resumes_to_the_same_model(trained, monkeypatch, tmp_path):
    """A crash in round 2's retraining, while its AGP ramp is still pruning (iteration 7 of 20, ramp over the
    first 10), resumes from the round's last checkpoint (iteration 5) to the model of an uninterrupted run."""
    retrain = {"steps": "20it", "batch_size": 100, "eval_every": "5it"}
    hp = dict(prune_fraction=0.4, rounds=2, ramp=0.5, retrain=retrain)
    whole, _, _ = _prune_budget(trained, monkeypatch, folder=tmp_path / "whole", **hp)
    calls, results, real_train = [], [], stages_module.train

    class Crash(Exception):
        pass

    class KillAt7:
        def on_step_end(self, it, m, opt):
            if it == 7:
                raise Crash

    def crashing_train(model, data, hparams, callbacks=(), **kw):
        calls.append(kw["checkpoint_dir"])
        extra = [KillAt7()] if len(calls) == 2 else []
        results.append(real_train(model, data, hparams, callbacks=[*callbacks, *extra], **kw))
        return results[-1]

    monkeypatch.setattr(stages_module, "train", crashing_train)
    with pytest.raises(Crash):
        _prune_budget(trained, monkeypatch, folder=tmp_path / "cut", **hp)
    assert (tmp_path / "cut" / "round2" / "checkpoint.pt").exists()
    assert not (tmp_path / "cut" / "round2" / "record.json").exists()
    resumed, records, _ = _prune_budget(trained, monkeypatch, folder=tmp_path / "cut", **hp)
    assert calls[2:] == [tmp_path / "cut" / "round2"]  # round 1 replayed from its record, round 2 resumed
    assert results[-1].resumed_from == 5
    a, b = plain_state_dict(whole), plain_state_dict(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sparsity(resumed) == pytest.approx(0.64, abs=1e-3)


def _budget_with_control(trained, monkeypatch, input_wrong: int, control_wrong: int, folder=None, control=True):
    """A planted knee at 0.7 sparsity, then 0.1 pt lost per 0.01 of sparsity; the input model gets ``input_wrong``
    of N validation examples wrong, the control (the only model measured at sparsity 0) ``control_wrong``."""
    model, data = trained
    calls = []

    def fake_correctness(m, dataset, **kw):
        s = sparsity(m)
        calls.append(s)
        return _wrong(control_wrong if s == 0 else round(N * max(0.0, s - 0.7) / 10))

    monkeypatch.setattr(stages_module, "correctness", fake_correctness)
    runner = PruneRunner(PruneStage(schedule="budget", scope="global", accuracy_budget=0.003, confidence=0.0,
                                    prune_fraction=0.4, rounds=6, control=control,
                                    retrain={"steps": "2it", "batch_size": 100}))
    ctx = _ctx(data, folder)
    ctx.reference_correct = _wrong(input_wrong)
    out = runner.run(copy.deepcopy(model), ctx, folder)
    return out, ctx, calls


def test_a_more_accurate_control_becomes_the_budget_reference(trained, monkeypatch):
    """Input model 1 pt below its retrained control: measured from the input model the 1 pt the retraining gave
    is spent too (0.784 kept: 0.84 pt past the knee, -0.16 pt from the input model); measured from the control
    only the 0.3 pt budget is (0.64 kept), and the later stages' reference is the control's correctness."""
    _, without, _ = _budget_with_control(trained, monkeypatch, input_wrong=N // 100, control_wrong=0, control=False)
    chosen = [r["sparsity"] for r in without.notes["budget_rounds"] if r["chosen"]]
    assert [round(c, 3) for c in chosen] == [0.784]
    pruned, ctx, calls = _budget_with_control(trained, monkeypatch, input_wrong=N // 100, control_wrong=0)
    assert calls[0] == 0.0  # the control is measured before any round
    assert sparsity(pruned) == pytest.approx(0.64, abs=1e-3)
    assert ctx.notes["budget_control"] == {"input_val_accuracy": 0.99, "control_val_accuracy": 1.0,
                                           "reference": "control"}
    assert torch.equal(ctx.reference_correct, _wrong(0))


def test_a_less_accurate_control_leaves_the_input_model_as_reference(trained, monkeypatch):
    _, ctx, _ = _budget_with_control(trained, monkeypatch, input_wrong=0, control_wrong=N // 100)
    assert ctx.notes["budget_control"]["reference"] == "input"
    assert torch.equal(ctx.reference_correct, _wrong(0))
    assert [round(r["sparsity"], 3) for r in ctx.notes["budget_rounds"] if r["chosen"]] == [0.64]


def test_the_control_is_trained_once_and_restored_with_its_stage(trained, monkeypatch, tmp_path):
    _, first, calls = _budget_with_control(trained, monkeypatch, N // 100, 0, folder=tmp_path)
    assert calls.count(0.0) == 1 and (tmp_path / "control" / "correct.pt").exists()
    _, again, calls = _budget_with_control(trained, monkeypatch, N // 100, 0, folder=tmp_path)
    assert calls == []  # control and every round replayed from the folder
    assert torch.equal(again.reference_correct, _wrong(0))
    # a finished stage restored by the pipeline sets the same reference for the stages after it
    runner = PruneRunner(PruneStage(schedule="budget", control=True, retrain={"steps": "2it"}))
    ctx = _ctx(trained[1], tmp_path)
    ctx.reference_correct = _wrong(N // 100)
    model = copy.deepcopy(trained[0])
    runner.rebuild(model, plain_state_dict(model), tmp_path, ctx)
    assert torch.equal(ctx.reference_correct, _wrong(0)) and ctx.notes["budget_control"]["reference"] == "control"


def _lam_search(trained, monkeypatch, verdicts, lams, folder=None, finetune=None, qat=None):
    model, data = trained
    seen = []

    def scripted(m, dataset, **kw):
        seen.append(len(torch.unique(plain_state_dict(m)["features.0.weight"])))
        return _wrong(0 if verdicts[len(seen) - 1] else N // 100)

    monkeypatch.setattr(stages_module, "correctness", scripted)
    runner = QuantizeRunner(QuantizeStage(method="ecsq", bits=5, lam=lams, accuracy_budget=0.005, confidence=0,
                                          finetune=finetune or {}, qat=qat or {}))
    ctx = _ctx(data, folder)
    out = runner.run(copy.deepcopy(model), ctx, folder)
    return out, ctx.notes, seen


def test_ecsq_search_keeps_the_first_rate_within_budget(trained, monkeypatch):
    lams = [0.5, 0.1, 0.02, 0.0]
    out, notes, seen = _lam_search(trained, monkeypatch, [False, False, True, True], lams)
    assert notes["lam"] == 0.02 and len(seen) == 3  # stopped at the first within budget
    assert seen[0] < seen[1] < seen[2]  # a larger rate weight leaves fewer distinct levels
    reference = copy.deepcopy(trained[0])
    names = [n for n in plain_state_dict(reference) if n.endswith("weight")]
    ecsq_weights(reference, 5, 0.02, names=names, relative=True)
    got, want = plain_state_dict(out), plain_state_dict(reference)
    assert all(torch.equal(got[k], want[k]) for k in want)  # the model holds the chosen rate's quantization
    assert {c.method for c in export_codes(out).values()} == {"ecsq"}


def test_ecsq_search_keeps_the_fine_tuned_trial_a_plain_run_would_make(trained, monkeypatch, tmp_path):
    """The chosen trial's fine-tuned weights are kept instead of fine-tuning again: the same model as a run with
    that rate alone, whether the search ran now or is replayed from its records."""
    finetune = {"steps": "5it", "lr": 0.001}
    searched, notes, _ = _lam_search(trained, monkeypatch, [False, True], [0.5, 0.02], finetune=finetune)
    replayed, _, _ = _lam_search(trained, monkeypatch, [False, True], [0.5, 0.02], tmp_path, finetune)
    replayed, _, seen = _lam_search(trained, monkeypatch, [], [0.5, 0.02], tmp_path, finetune)
    assert notes["lam"] == 0.02 and seen == []  # the rerun read both records, evaluated nothing
    model, data = trained
    plain = QuantizeRunner(QuantizeStage(method="ecsq", bits=5, lam=0.02, finetune=finetune)).run(
        copy.deepcopy(model), _ctx(data), None)
    want = plain_state_dict(plain)
    assert any(not torch.equal(want[k], plain_state_dict(model)[k]) for k in want)  # fine-tuning changed it
    for got in (plain_state_dict(searched), plain_state_dict(replayed)):
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_ecsq_search_falls_back_to_the_last_rate(trained, monkeypatch):
    _, notes, seen = _lam_search(trained, monkeypatch, [False, False], [0.5, 0.0])
    assert notes["lam"] == 0.0 and len(seen) == 2


def test_ecsq_rate_weight_scales_with_each_tensor_variance(trained):
    """The same relative rate weight on a tensor scaled by 10 gives the same assignment (scale-free)."""
    model = copy.deepcopy(trained[0])
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled.features[0].weight.mul_(10)
    ecsq_weights(model, 4, 0.05, names=["features.0.weight"], relative=True)
    ecsq_weights(scaled, 4, 0.05, names=["features.0.weight"], relative=True)
    a = plain_state_dict(model)["features.0.weight"]
    b = plain_state_dict(scaled)["features.0.weight"]
    torch.testing.assert_close(a * 10, b, rtol=1e-4, atol=1e-5)


def test_quantized_biases_are_stored_as_codes(trained, tmp_path):
    model, data = trained
    stages = [{"quantize": {"method": "kmeans", "bits": 4, "biases": 8}}, {"encode": {"coder": "ans"}}]
    plain = [{"quantize": {"method": "kmeans", "bits": 4}}, {"encode": {"coder": "ans"}}]
    with_b = compress(copy.deepcopy(model), data, recipe=parse_recipe({"stages": stages}), out=tmp_path / "b.netp",
                      device="cpu")
    compress(copy.deepcopy(model), data, recipe=parse_recipe({"stages": plain}), out=tmp_path / "f.netp", device="cpu")
    kinds = {t["name"]: t["kind"] for t in read_manifest(tmp_path / "b.netp")["tensors"]}
    assert kinds["features.0.bias"] == "codes" and kinds["fc_out.bias"] == "codes"
    assert (tmp_path / "b.netp").stat().st_size < (tmp_path / "f.netp").stat().st_size
    bias = plain_state_dict(with_b.model)["features.0.bias"]
    assert len(torch.unique(bias)) <= 256
    torch.testing.assert_close(bias, model.features[0].bias.detach(), rtol=0, atol=float(bias.abs().max()) / 100)
    loaded = netpress.load(tmp_path / "b.netp")
    x = data.test.x[:32]
    torch.testing.assert_close(loaded.eval()(x), with_b.model.eval()(x))


@pytest.mark.parametrize("stage, message", [
    ({"prune": {"schedule": "budget", "prune_fraction": 1.0}}, "prune_fraction: must be a fraction in (0, 1)"),
    ({"prune": {"schedule": "budget", "layers": {"fc": 0.9}}}, "layers: not used by schedule budget"),
    ({"prune": {"schedule": "budget", "confidence": 9}}, "confidence: must be a number of standard errors"),
    ({"prune": {"schedule": "budget", "ramp": 1.5, "retrain": {"steps": "1ep"}}}, "ramp: must be a fraction in .0, 1., got 1.5"),
    ({"prune": {"schedule": "iterative", "ramp": 0.5, "retrain": {"steps": "1ep"}}}, "ramp: only for schedule budget"),
    ({"prune": {"schedule": "budget", "ramp": 0.5}}, "ramp: spreads pruning over the retraining: give retrain"),
    ({"prune": {"schedule": "budget", "control": "yes", "retrain": {"steps": "1ep"}}}, "control: must be true or false"),
    ({"prune": {"schedule": "oneshot", "control": True, "retrain": {"steps": "1ep"}}}, "control: only for schedule budget"),
    ({"prune": {"schedule": "budget", "control": True}}, "control: is the input model retrained like one round: give"),
    ({"quantize": {"method": "kmeans", "lam": [0.1, 0]}}, "lam: a list is searched only by method ecsq"),
    ({"quantize": {"method": "ecsq", "lam": []}}, "lam: must be a number >= 0 or a non-empty list"),
    ({"quantize": {"method": "ecsq", "lam": -1}}, "lam: must be a number >= 0"),
    ({"quantize": {"biases": 40}}, "biases: must be 0 (float) or bits in 1-16"),
])
def test_bad_budget_settings_are_one_line_errors(stage, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_recipe({"stages": [stage]})


def test_budget_recipe_needs_validation_data(trained):
    model, data = trained
    with pytest.raises(ConfigError, match="spends a validation-accuracy budget"):
        compress(copy.deepcopy(model), data.train, test_data=data.test, recipe="budget", device="cpu")


def test_a_validation_set_too_small_for_the_budget_is_a_warning():
    from netpress.pipeline.compress import coarse_validation

    recipe = load_recipe("budget")
    assert coarse_validation(recipe, 300) == ("300 validation examples: one example is 0.33 pt, more than the prune "
                                              "stage's 0.30 pt budget; give more validation data for the budget to "
                                              "be measurable")
    assert coarse_validation(recipe, 334) is None and coarse_validation(load_recipe("deep-compression"), 10) is None


def test_budget_recipe_end_to_end_on_digits(tmp_path):
    data = load_data("digits")
    model = build_model("lenet300", data.input_shape, data.num_classes, seed=0)
    train(model, data, TrainingHparams(steps="6ep", batch_size=50, lr=0.05), device="cpu")
    ref = evaluate(model, data.val).accuracy
    doc = load_recipe("budget").source
    assert [next(iter(s)) for s in doc["stages"]] == ["distill", "prune", "train", "quantize", "encode"]
    doc["stages"][1]["prune"].update(rounds=4, retrain={"steps": "2ep", "lr": 0.02})
    doc["stages"][2]["train"] = {"steps": "2ep", "lr": 0.02}
    doc["stages"][3]["quantize"]["finetune"] = {"steps": "1ep", "lr": 0.001}
    out = tmp_path / "b.netp"
    with pytest.warns(UserWarning, match="300 validation examples"):
        result = compress(copy.deepcopy(model), data, recipe=parse_recipe(doc, "budget"), out=out, device="cpu",
                          train_hp=TrainingHparams(batch_size=50), report_dir=tmp_path / "report")
    final = netpress.load(out)
    assert evaluate(final, data.val).accuracy >= ref - 0.004  # the whole budget holds on validation data
    assert result.rows[-1]["sparsity"] > 0.5 and result.rows[-1]["ratio"] > 15
    assert result.notes["lam"] in doc["stages"][3]["quantize"]["lam"]
    tensors = {t["name"]: t for t in read_manifest(out)["tensors"]}
    assert tensors["fc_out.bias"]["kind"] == "codes"
    for name in ("features.0.weight", "features.2.weight", "fc_out.weight"):  # float16 codebooks
        assert tensors[name]["codebook"].get("dtype") == "float16", name
    report = (tmp_path / "report" / "report.md").read_text()  # the path, as a table and a plot
    rounds = result.notes["budget_rounds"]
    kept_rows = [line for line in report.splitlines() if line[:3].strip("| ").isdigit() and line.endswith("| kept |")]
    assert len(kept_rows) == sum(r["chosen"] for r in rounds) == 1
    assert f"| {len(rounds)} | {rounds[-1]['sparsity']:.4f} |" in report
    assert (tmp_path / "report" / "budget.png").stat().st_size > 1000
    x = data.test.x[:64]
    with torch.no_grad():  # the model the pipeline measured is the one the file decodes to
        assert torch.equal(final.eval()(x), result.model.eval()(x))


def test_a_finished_budget_pipeline_reports_its_search_when_restored(trained, monkeypatch, tmp_path):
    model, data = trained
    stages = [{"prune": {"schedule": "budget", "rounds": 3, "retrain": {"steps": "1ep"}}},
              {"quantize": {"method": "ecsq", "bits": 4, "lam": [0.5, 0.0]}}]
    recipe = parse_recipe({"stages": stages})
    first = compress(copy.deepcopy(model), data, recipe=recipe, workdir=tmp_path, device="cpu")
    again = compress(copy.deepcopy(model), data, recipe=recipe, workdir=tmp_path, device="cpu")
    assert len(first.notes["budget_rounds"]) == 3 and first.notes["lam_search"]
    for key in ("budget_rounds", "lam_search", "lam"):
        assert again.notes[key] == first.notes[key], key


def test_calibrated_ecsq_rounds_from_training_inputs_and_rebuilds(trained, monkeypatch, tmp_path):
    """``calibration``: GPTQ-style ECSQ from training inputs only, codebooks fine-tuned after, and a finished stage
    rebuilt from its folder and state is the same model."""
    from netpress.quantize import activations

    model, data = trained
    seen = []
    real = activations.calibration_inputs
    monkeypatch.setattr(activations, "calibration_inputs", lambda ds, n, **kw: seen.append((ds, n)) or real(ds, n, **kw))
    finetune = {"steps": "5it", "lr": 0.001}
    runner = QuantizeRunner(QuantizeStage(method="ecsq", bits=4, lam=0.02, calibration=300, finetune=finetune))
    out = runner.run(copy.deepcopy(model), _ctx(data, tmp_path), tmp_path)
    assert seen and all(ds is data.train and n == 300 for ds, n in seen)
    assert {c.method for c in export_codes(out).values()} == {"ecsq-gptq"}
    frozen = QuantizeRunner(QuantizeStage(method="ecsq", bits=4, lam=0.02, calibration=300)).run(
        copy.deepcopy(model), _ctx(data), None)
    tuned_books = [c.codebook for c in export_codes(out).values()]
    assert any(not torch.equal(a, b.codebook) for a, b in zip(tuned_books, export_codes(frozen).values()))
    plain = QuantizeRunner(QuantizeStage(method="ecsq", bits=4, lam=0.02)).run(copy.deepcopy(model), _ctx(data), None)
    assert any(not torch.equal(a.indices, b.indices)
               for a, b in zip(export_codes(frozen).values(), export_codes(plain).values()))  # rounding moved
    state = out.state_dict()
    rebuilt = runner.rebuild(copy.deepcopy(model), state, tmp_path, _ctx(data, tmp_path))
    rebuilt.load_state_dict(state)
    x = data.test.x[:64]
    assert torch.equal(rebuilt(x), out(x))


QAT = {"steps": "10it", "lr": 0.01}


def test_ecsq_qat_trains_under_the_levels_then_rounds_the_trained_weights_and_rebuilds(trained, tmp_path):
    """``qat``: the float weights move under the ECSQ forward pass (pruned zeros kept), the rounding is a plain ECSQ
    of those trained weights, and a finished stage rebuilt from its folder and state is the same model."""
    model, data = trained
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        pruned.features[0].weight[:, ::3] = 0
    hp = dict(method="ecsq", bits=4, lam=0.1, finetune={"steps": "5it", "lr": 0.001})
    runner = QuantizeRunner(QuantizeStage(**hp, qat=QAT))
    out = runner.run(copy.deepcopy(pruned), _ctx(data, tmp_path), tmp_path)
    assert (tmp_path / "qat").is_dir()
    state = out.state_dict()
    floats = {k: v for k, v in state.items() if k.endswith("weight.original")}
    assert any(not torch.equal(v, pruned.state_dict()[k.replace(".parametrizations.weight.original", ".weight")])
               for k, v in floats.items())  # training moved the weights
    assert bool((floats["features.0.parametrizations.weight.original"][:, ::3] == 0).all())
    assert all(len(torch.unique(v)) > 16 for v in floats.values())  # rounded from floats, not from qat's levels
    reference = copy.deepcopy(pruned)
    stages_module._restore_floats(reference, state)
    names = [n for n in plain_state_dict(reference) if n.endswith("weight")]
    ecsq_weights(reference, 4, 0.1, names=names, relative=True)
    got, want = export_codes(out), export_codes(reference)
    assert all(torch.equal(got[n].indices, want[n].indices) for n in names)  # ECSQ of the trained weights
    without = QuantizeRunner(QuantizeStage(**hp)).run(copy.deepcopy(pruned), _ctx(data), None)
    assert any(not torch.equal(got[n].indices, export_codes(without)[n].indices) for n in names)
    rebuilt = runner.rebuild(copy.deepcopy(pruned), state, tmp_path, _ctx(data, tmp_path))
    rebuilt.load_state_dict(state)
    x = data.test.x[:64]
    assert torch.equal(rebuilt(x), out(x))
    again = runner.run(copy.deepcopy(pruned), _ctx(data, tmp_path), tmp_path)  # resumes the finished training
    assert torch.equal(again(x), out(x))


def test_ecsq_search_with_qat_keeps_the_trial_a_single_rate_run_would_make(trained, monkeypatch):
    finetune = {"steps": "5it", "lr": 0.001}
    searched, notes, _ = _lam_search(trained, monkeypatch, [False, True], [0.5, 0.02], finetune=finetune, qat=QAT)
    model, data = trained
    plain = QuantizeRunner(QuantizeStage(method="ecsq", bits=5, lam=0.02, finetune=finetune, qat=QAT)).run(
        copy.deepcopy(model), _ctx(data), None)
    assert notes["lam"] == 0.02
    got, want = searched.state_dict(), plain.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_the_report_says_what_the_budget_drops_are_measured_from():
    from netpress.report.compression import _reference_line

    assert _reference_line(None) == []
    line = _reference_line({"input_val_accuracy": 0.9038, "control_val_accuracy": 0.906, "reference": "control"})[0]
    assert line.startswith("Drops measured from the control") and "0.9038 input model, 0.9060 control" in line
    assert "the input model (the control" in _reference_line({"input_val_accuracy": 0.91, "control_val_accuracy": 0.9,
                                                               "reference": "input"})[0]
