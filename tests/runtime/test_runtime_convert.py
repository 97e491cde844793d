"""convert(): the per-layer chooser (forced timings), plan re-use and caching, load(path, runtime=...)."""
from __future__ import annotations

import json
import sys
import warnings

import pytest
import torch
from torch import nn

import netpress
from netpress.errors import ConfigError, UnknownNameError
from netpress.models import build_model
from netpress.prune import prune
from netpress.quantize import UniformSpec, export_codes, quantize_weights, share_weights
from netpress.runtime import (Int8Linear, LowBitEmbedding, Plan, RuntimeHparams, choose, convert, machine_id,
                              resident_bytes)
from netpress.runtime.convert import _plain_copy

warnings.filterwarnings("ignore", message=".*(Sparse|deprecated).*")
FAST = RuntimeHparams(repeats=2)


def _compressed(seed=0) -> nn.Module:
    net = build_model("lenet300", (1, 28, 28), 10, seed=seed)
    prune(net, 0.92)
    return share_weights(net, bits=5)


def forced(table: dict[str, float]):
    """A timer that reports fixed seconds per kind (and records which layer kinds it was asked to time); the
    whole model ('model') and fused groups ('fused') take table.get(key, 0)."""
    calls = []

    def timer(modules, x):
        if not {"model", "fused"} & set(modules):
            calls.append((sorted(modules), tuple(x.shape)))
        return {k: table.get(k, 0.0) for k in modules}
    timer.calls = calls
    return timer


def test_chooser_picks_the_kind_the_timer_says_is_fastest():
    net = _compressed()
    for fastest in ("int8", "csr", "dense", "lowbit"):
        table = {"dense": 5e-6, "int8": 5e-6, "lowbit": 5e-6, "csr": 5e-6, fastest: 1e-6}
        fast = convert(net, hp=FAST, timer=forced(table))
        applicable = [layer for layer in fast.runtime_plan.layers if fastest in layer.seconds]
        assert len(applicable) >= 2 and all(layer.kind == fastest for layer in applicable)


def test_chooser_breaks_near_ties_by_memory():
    assert choose({"dense": [1.00e-6, 10e-6], "int8": [1.05e-6, 10.2e-6]}, {"dense": 400, "int8": 100}, 0.1) == "int8"
    assert choose({"dense": [1e-6, 10e-6], "int8": [2e-6, 20e-6]}, {"dense": 400, "int8": 100}, 0.1) == "dense"
    # a slower kind that saves almost nothing does not win (int8 vs 8-bit low-bit levels: same bytes)
    assert choose({"int8": [1e-6, 10e-6], "lowbit": [1.05e-6, 10.2e-6]}, {"int8": 100, "lowbit": 95}, 0.1) == "int8"
    assert choose({"int8": [1e-6, 1e-5], "lowbit": [5e-6, 5e-5]}, {"int8": 100, "lowbit": 95}, 0.1, [1e-3, 1e-3]) \
        == "int8"


def test_chooser_times_each_layer_at_its_real_input_shape_per_batch():
    timer = forced({"dense": 1.0, "int8": 2.0, "lowbit": 3.0, "csr": 4.0})
    convert(_compressed(), hp=RuntimeHparams(batch_sizes=(1, 4)), timer=timer)
    shapes = [s for _, s in timer.calls]
    assert shapes == [(1, 784), (4, 784), (1, 300), (4, 300), (1, 100), (4, 100)]
    assert timer.calls[0][0] == ["csr", "dense", "int8", "lowbit"]  # 92% sparse + quantized: all kinds apply


def test_converted_model_matches_decoded_model():
    net = _compressed()
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        ref = _plain_copy(net)(x)
    for kind, tol in (("dense", 0.0), ("csr", 1e-5), ("lowbit", 1e-5)):
        table = {"dense": 9.0, "int8": 9.0, "lowbit": 9.0, "csr": 9.0, kind: 1.0}
        got = convert(net, hp=FAST, timer=forced(table))(x)
        torch.testing.assert_close(got, ref, rtol=0, atol=tol + tol * float(ref.abs().max()))
    got = convert(net, hp=FAST, timer=forced({"dense": 9.0, "int8": 1.0, "lowbit": 9.0, "csr": 9.0}))(x)
    # int8: k-means weights re-quantized (<= 1/254 of a row's max) and 7-bit dynamic activations: 5% of the range
    assert (got - ref).abs().max() <= 0.05 * ref.abs().max()


def test_plan_round_trips_and_is_reapplied_without_timing(tmp_path):
    net = _compressed()
    fast = convert(net, hp=FAST, timer=forced({"dense": 3.0, "int8": 1.0, "lowbit": 2.0, "csr": 4.0}))
    path = tmp_path / "plan.json"
    fast.runtime_plan.save(path)
    plan = Plan.load(path)
    assert plan.choices() == fast.runtime_plan.choices() == {n: "int8" for n in plan.choices()}

    def no_timer(*_):
        raise AssertionError("a saved plan must not be re-measured")
    again = convert(net, plan=plan, timer=no_timer)
    assert all(isinstance(again.get_submodule(n), Int8Linear) for n in plan.choices())


def test_plan_that_does_not_fit_is_refused():
    plan = Plan("m", [])
    plan_dict = plan.to_dict()
    plan_dict["layers"] = [{"name": "nope", "op": "Linear", "weight_shape": [1, 1], "input_shapes": [],
                            "kind": "int8", "seconds": {}, "resident_bytes": {}}]
    with pytest.raises(ConfigError, match="nope"):
        convert(_compressed(), plan=Plan.from_dict(plan_dict))


def test_timing_cache_skips_measurement_on_second_convert(tmp_path, monkeypatch):
    cache = str(tmp_path / "timings.json")
    hp = RuntimeHparams(repeats=2, cache=cache)
    first = convert(_compressed(), hp=hp)
    stored = json.loads(open(cache).read())
    assert len(stored) == 2 * (4 + 4 + 3 + 1)  # 2 batch sizes x (kinds per layer + the whole model); fc_out: no csr
    assert all(k.startswith(machine_id() + "|") for k in stored)

    def no_timer(*_a, **_k):
        raise AssertionError("cached timings must be reused")
    monkeypatch.setattr(sys.modules["netpress.runtime.convert"], "median_seconds", no_timer)
    second = convert(_compressed(), hp=hp)
    assert second.runtime_plan.choices() == first.runtime_plan.choices()


def test_unquantized_model_is_never_rounded():
    net = build_model("lenet300", (1, 28, 28), 10, seed=0)
    fast = convert(net, hp=FAST, timer=forced({"dense": 9.0, "int8": 1.0, "lowbit": 1.0, "csr": 1.0}))
    assert set(fast.runtime_plan.choices().values()) == {"dense"}


def test_resident_bytes_counts_compressed_forms():
    net = _compressed()
    dense = resident_bytes(_plain_copy(net))
    assert dense == 4 * (300 + 100 + 10) + 4 * (784 * 300 + 300 * 100 + 1000)  # fp32 biases + weights
    int8 = convert(net, hp=FAST, timer=forced({"dense": 9.0, "int8": 1.0, "lowbit": 9.0, "csr": 9.0}))
    n_w = 784 * 300 + 300 * 100 + 1000
    assert n_w <= resident_bytes(int8) <= n_w + 20 * 410 + 4 * 410
    lowbit = convert(net, hp=FAST, timer=forced({"dense": 9.0, "int8": 9.0, "lowbit": 1.0, "csr": 9.0}))
    assert resident_bytes(lowbit) < resident_bytes(int8) < dense / 3.8


def test_embedding_and_user_model_with_example_inputs():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.fc = nn.Embedding(100, 16), nn.Linear(16, 4)

        def forward(self, ids):
            return self.fc(self.emb(ids).mean(1))
    net = Tiny()
    quantize_weights(net, UniformSpec(bits=4, granularity="channel"), names=["emb.weight", "fc.weight"])
    ids = torch.randint(0, 100, (3, 5))
    with pytest.raises(ConfigError, match="example_inputs"):
        convert(net)
    fast = convert(net, example_inputs=[ids], hp=FAST, timer=forced({"dense": 9.0, "int8": 9.0, "lowbit": 1.0}))
    assert isinstance(fast.emb, LowBitEmbedding)
    with torch.no_grad():
        torch.testing.assert_close(fast(ids), _plain_copy(net)(ids), rtol=1e-5, atol=1e-6)
    assert set(export_codes(net)) == {"emb.weight", "fc.weight"}  # the input model is left untouched


def test_load_with_runtime(tmp_path):
    net = _compressed()
    path = tmp_path / "m.netp"
    netpress.save(net, path)
    x = torch.randn(4, 1, 28, 28)
    decoded = netpress.load(path)
    fast = netpress.load(path, runtime="lowbit")
    assert set(fast.runtime_plan.choices().values()) == {"lowbit"}
    torch.testing.assert_close(fast(x), decoded(x), rtol=1e-5, atol=1e-5)
    auto = netpress.load(path, runtime=RuntimeHparams(repeats=2))
    assert (auto(x) - decoded(x)).abs().max() <= 0.05 * decoded(x).abs().max()
    plan_path = tmp_path / "plan.json"
    auto.runtime_plan.save(plan_path)
    assert netpress.load(path, runtime=str(plan_path)).runtime_plan.choices() == auto.runtime_plan.choices()
    with pytest.raises(ConfigError, match="unknown runtime"):
        netpress.load(path, runtime="fastest")


def test_bad_hparams_raise_before_work():
    with pytest.raises(UnknownNameError):
        RuntimeHparams(kinds=("int3",))
    with pytest.raises(ConfigError):
        RuntimeHparams(batch_sizes=(0,))


class _Attention(nn.Module):
    """query / key / value read the same tensor (fusable); out reads another."""

    def __init__(self):
        super().__init__()
        self.query, self.key, self.value, self.out = (nn.Linear(32, 16), nn.Linear(32, 16), nn.Linear(32, 8),
                                                      nn.Linear(40, 32))

    def forward(self, x):
        return self.out(torch.cat([self.query(x), self.key(x) * 2, self.value(x)], -1))


def _attention() -> nn.Module:
    net = _Attention()
    return quantize_weights(net, UniformSpec(bits=8, granularity="channel"))


def test_siblings_reading_one_tensor_fuse_when_faster_and_match():
    net, x = _attention(), torch.randn(2, 5, 32)
    table = {"dense": 9.0, "int8": 1.0, "lowbit": 9.0, "fused": 2.0}  # fused 2 < 3 x 1 apart
    hp = RuntimeHparams(repeats=2, fuse=True)
    assert not any(layer.group for layer in convert(net, example_inputs=[x], hp=FAST,
                                                    timer=forced(table)).runtime_plan.layers)  # off by default
    fused = convert(net, example_inputs=[x], hp=hp, timer=forced(table))
    groups = {layer.name: layer.group for layer in fused.runtime_plan.layers}
    assert groups == {"query": "query,key,value", "key": "query,key,value", "value": "query,key,value", "out": ""}
    apart = convert(net, example_inputs=[x], hp=hp, timer=forced({**table, "fused": 3.5}))
    assert not any(layer.group for layer in apart.runtime_plan.layers)
    assert isinstance(apart.query, Int8Linear)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), apart(x), rtol=1e-5, atol=1e-5)  # one GEMM == three GEMMs
        again = convert(net, plan=fused.runtime_plan)
        torch.testing.assert_close(again(x), fused(x))
        torch.testing.assert_close(fused.key(x + 1), apart.key(x + 1), rtol=1e-5, atol=1e-5)  # any call order


def test_model_slack_lets_a_slightly_slower_smaller_kind_win():
    net, x = _attention(), torch.randn(2, 5, 32)
    table = {"dense": 1.0, "int8": 1.5, "lowbit": 1.4, "model": 200.0}  # budget 2.0: four layers x 0.4 fit
    assert all(k == "lowbit" for k in convert(net, example_inputs=[x], hp=FAST,
                                              timer=forced(table)).runtime_plan.choices().values())
    table["model"] = 100.0  # budget 1.0, shared: the first two layers spend 0.8, the others stay fastest
    kinds = convert(net, example_inputs=[x], hp=FAST, timer=forced(table)).runtime_plan.choices()
    assert list(kinds.values()) == ["lowbit", "lowbit", "dense", "dense"]
    strict = RuntimeHparams(repeats=2, model_slack=0.0)
    assert all(k == "dense" for k in convert(net, example_inputs=[x], hp=strict,
                                             timer=forced(table)).runtime_plan.choices().values())


def test_lenet5_convs_run_int8_and_lowbit():
    from netpress.runtime import Int8Conv2d, LowBitConv2d

    net = quantize_weights(build_model("lenet5", (1, 28, 28), 10, seed=0), UniformSpec(bits=8, granularity="channel"))
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        ref = _plain_copy(net)(x)
        int8 = convert(net, hp=FAST, timer=forced({"dense": 9.0, "int8": 1.0, "lowbit": 9.0, "csr": 9.0}))
        assert isinstance(int8.features[0], Int8Conv2d) and isinstance(int8.features[2], Int8Conv2d)
        assert (int8(x) - ref).abs().max() <= 0.05 * ref.abs().max()  # dynamic 8-bit activations
        low = convert(net, hp=FAST, timer=forced({"dense": 9.0, "int8": 9.0, "lowbit": 1.0, "csr": 9.0}))
        assert isinstance(low.features[0], LowBitConv2d)
        torch.testing.assert_close(low(x), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
