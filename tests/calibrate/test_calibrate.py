"""Calibration: any input form, statistics equal to X^T X from the raw inputs (Linear and im2col Conv), the
sequential loop, quality functions, one-shot results that save and load back bit-identically."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import netpress
from netpress.calibrate import (OutputQuality, capture, execution_groups, first_tensor, input_matrix, layerwise,
                                oneshot)
from netpress.errors import ConfigError, DataError
from netpress.prune import SparseGPTHparams, WandaHparams, get_masks
from netpress.quantize import GPTQHparams, export_codes


class TwoInputs(nn.Module):
    """A model called as ``model(a, b)`` or ``model(a=..., b=...)``, returning a tuple."""

    def __init__(self):
        super().__init__()
        self.fa, self.fb, self.out = nn.Linear(8, 16), nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, a, b):
        return self.out(torch.relu(self.fa(a) + self.fb(b))), a.sum()


def test_inputs_tensors_tuples_and_dicts_give_the_same_statistics():
    torch.manual_seed(0)
    net, a, b = TwoInputs(), torch.randn(32, 8), torch.randn(32, 8)
    mods = {"fa": net.fa, "out": net.out}
    by_tuple = capture(net, [(a[:16], b[:16]), (a[16:], b[16:])], mods, dtype=torch.float64)
    by_dict = capture(net, [{"b": b, "a": a}], mods, dtype=torch.float64)  # by keyword, not position
    xa = a.double()
    assert torch.allclose(by_tuple["fa"].hessian, 2 * xa.T @ xa / 32, atol=1e-12)
    assert torch.allclose(by_dict["fa"].hessian, by_tuple["fa"].hessian, atol=1e-12)
    assert torch.allclose(by_dict["fa"].sq_norms, (xa ** 2).sum(0), atol=1e-12) and by_dict["fa"].n == 32
    assert by_dict["out"].hessian.shape == (16, 16)
    assert torch.equal(first_tensor(net(a, b)), net(a, b)[0])


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("conv", [nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(3, 4, (3, 2), padding="same"),
                                  nn.Conv1d(3, 4, 3, dilation=2)])
def test_conv_input_matrix_is_im2col(conv):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6) if isinstance(conv, nn.Conv2d) else torch.randn(2, 3, 9)
    rows = input_matrix(conv, x)
    y = rows @ conv.weight.reshape(4, -1).T + conv.bias
    ref = conv(x)
    assert torch.allclose(y, ref.movedim(1, -1).reshape(-1, 4), atol=1e-5)


def test_sequential_later_layers_see_compressed_outputs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    x = torch.randn(16, 4)
    seen = {}

    def solve(name, module, stats):
        seen[name] = stats.hessian.clone()
        with torch.no_grad():
            module.weight.mul_(0.5)  # "compress" by halving
        return stats.n

    out = layerwise(net, [x], {"0": net[0], "1": net[1]}, solve, dtype=torch.float64)
    h1 = net[0](x).double()  # net[0] is already halved: the input net[1] saw
    assert out == {"0": 16, "1": 16}
    assert torch.allclose(seen["1"], 2 * h1.T @ h1 / 16, atol=1e-6)


def test_capture_stops_the_pass_at_the_group():
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4))
    calls = []
    net[2].register_forward_hook(lambda *_: calls.append(1))
    stats = capture(net, [torch.randn(3, 4)] * 2, {"1": net[1]}, stop_at=net[1])
    assert stats["1"].n == 6 and calls == []
    capture(net, [torch.randn(3, 4)], {"1": net[1]})
    assert calls == [1]


def test_execution_groups_share_an_input():
    net = TwoInputs()
    a = torch.randn(2, 8)
    groups, unseen = execution_groups(net, (a, a), {"fa": net.fa, "fb": net.fb, "out": net.out})
    assert groups == [["fa", "fb"], ["out"]] and unseen == []


@torch.no_grad()
def test_quality_functions_and_losses():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 8))
    x = torch.randn(16, 8)
    mse, cos = OutputQuality(net, [x]), OutputQuality(net, [x], loss="cosine")
    assert mse(net) == 0 and abs(cos(net)) < 1e-6
    other = copy.deepcopy(net)
    with torch.no_grad():
        other[0].weight.add_(0.1)
    assert mse(other) == pytest.approx(float(((other(x) - net(x)) ** 2).mean()), rel=1e-5)
    assert cos(other) == pytest.approx(float((1 - F.cosine_similarity(other(x), net(x), dim=1)).mean()), rel=1e-4)
    with pytest.raises(DataError):
        OutputQuality(net, [])


def lenet_like():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 4))


@pytest.mark.parametrize("kw", [dict(quantize=GPTQHparams(bits=4)),
                                dict(quantize=GPTQHparams(bits=3, method="kmeans")),
                                dict(prune=SparseGPTHparams(n=2, m=4, blocksize=16), layers=["5.weight", "7.weight"]),
                                dict(prune=WandaHparams(n=2, m=4), quantize=GPTQHparams(bits=4),
                                     layers=["5.weight", "7.weight"])])
def test_oneshot_file_loads_back_bit_identical(tmp_path, kw):
    net, x = lenet_like(), torch.randn(64, 1, 8, 8)
    ref = net(x).detach()
    oneshot(net, [x[:32], x[32:]], **kw)
    assert 0 < net.netpress_oneshot["quality"] < float(ref.pow(2).mean())
    netpress.save(net, tmp_path / "m.netp")
    fresh = netpress.load(tmp_path / "m.netp", model=lenet_like())
    assert torch.equal(fresh(x), net(x))
    if "quantize" in kw:
        assert set(export_codes(net)) == set(kw.get("layers", ["0.weight", "2.weight", "5.weight", "7.weight"]))
    if "prune" in kw:
        assert all(float(m.mean()) == 0.5 for m in get_masks(net).values())


def test_gptq_improves_the_model_output_over_round_to_nearest():
    net, x = lenet_like(), torch.randn(256, 1, 8, 8)
    gptq = oneshot(copy.deepcopy(net), [x], quantize=GPTQHparams(bits=3))
    layers = gptq.netpress_oneshot["layers"]
    assert all(r["error"] < r["rtn_error"] for r in layers.values())


def test_oneshot_errors_before_any_change():
    net = lenet_like()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ConfigError, match="needs"):
        oneshot(net, [torch.randn(2, 1, 8, 8)])
    with pytest.raises(ConfigError, match="no parameter"):
        oneshot(net, [torch.randn(2, 1, 8, 8)], quantize=GPTQHparams(), layers=["banana.weight"])
    with pytest.raises(ConfigError, match="2-D"):
        oneshot(net, [torch.randn(2, 1, 8, 8)], quantize=GPTQHparams(granularity="group", group_size=2))
    with pytest.raises(DataError):
        oneshot(net, [], quantize=GPTQHparams())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def tiny_bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64)
    return transformers.BertModel(config).eval()


def test_bert_dict_inputs_gptq_wanda_and_round_trip(tmp_path):
    bert = tiny_bert()
    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(0, 100, (4, 12), generator=g),
                "attention_mask": torch.ones(4, 12, dtype=torch.long)} for _ in range(3)]
    ref = bert(**batches[0]).last_hidden_state
    linears = lambda n, m: isinstance(m, (nn.Linear, nn.Embedding)) and "position" not in n  # noqa: E731
    oneshot(bert, batches, prune=WandaHparams(sparsity=0.25), quantize=GPTQHparams(bits=4, group_size=16,
                                                                                   granularity="group"),
            layers=lambda n, m: isinstance(m, nn.Linear), quality="cosine")
    report = bert.netpress_oneshot
    assert len(report["layers"]) == 2 * 6 + 1 and report["quality"] < 0.2
    out = bert(**batches[0]).last_hidden_state
    assert F.cosine_similarity(out, ref, dim=-1).mean() > 0.8
    netpress.save(bert, tmp_path / "bert.netp")
    fresh = netpress.load(tmp_path / "bert.netp", model=tiny_bert())
    assert torch.equal(fresh(**batches[0]).last_hidden_state, out)
    emb = tiny_bert()
    oneshot(emb, batches, quantize=GPTQHparams(bits=4), layers=linears)
    notes = {n: r for n, r in emb.netpress_oneshot["layers"].items() if "note" in r}
    assert set(notes) == {"embeddings.word_embeddings.weight", "embeddings.token_type_embeddings.weight"}
