"""AWQ: scale search never worse than no scaling, folds that keep the function, unsafe folds undone, quality gain."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import netpress
from netpress.calibrate.awq import awq_scale, find_groups, fold
from netpress.errors import ConfigError
from netpress.quantize.awq import rounded, search_scales
from netpress.quantize.gptq import GPTQHparams, output_error


def salient_inputs(n: int = 512, cols: int = 32, seed: int = 0) -> torch.Tensor:
    """Inputs where four channels are 20x larger than the rest (the case AWQ is for)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cols, generator=g)
    x[:, :4] *= 20
    return x


class PreNorm(nn.Module):
    """LayerNorm -> two Linears reading its output (pre-LN attention style), then a Linear on their sum."""

    def __init__(self, d: int = 32):
        super().__init__()
        self.norm, self.a, self.b, self.out = nn.LayerNorm(d), nn.Linear(d, 16), nn.Linear(d, 16), nn.Linear(16, 4)
        with torch.no_grad():
            self.norm.weight.copy_(torch.linspace(0.5, 2, d))
            self.norm.weight[:4] = 20  # salient channels after the norm

    def features(self, x):
        h = self.norm(x)
        return torch.cat([self.a(h), self.b(h)], -1)

    def forward(self, x):
        h = self.norm(x)
        return self.out(torch.relu(self.a(h) + self.b(h)))


class PostNorm(nn.Module):
    """The LayerNorm's output also feeds the residual: scaling it cannot be folded."""

    def __init__(self, d: int = 32):
        super().__init__()
        self.norm, self.fc = nn.LayerNorm(d), nn.Linear(d, d)

    def forward(self, x):
        h = self.norm(x)
        return h + self.fc(h)


def test_search_is_never_worse_than_no_scaling_and_pays_on_salient_channels():
    x = salient_inputs()
    h = 2 * x.T @ x / x.shape[0]
    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(1))
    hp = GPTQHparams(bits=3)
    scale, report = search_scales([w], h, x.pow(2).mean(0).sqrt(), [hp])
    assert report["error"] <= report["error_unscaled"]
    assert report["error_unscaled"] == pytest.approx(output_error(w, rounded(w, torch.ones(32), hp), h))
    assert report["alpha"] > 0 and report["error"] < 0.8 * report["error_unscaled"]
    assert scale[:4].min() > scale[4:].max()  # salient channels scaled up


def test_fold_keeps_the_function_exactly_up_to_rounding():
    torch.manual_seed(0)
    net, x = PreNorm(), torch.randn(8, 32)
    before = net(x)
    fold(net.norm, [net.a, net.b], torch.rand(32) + 0.5)
    assert torch.allclose(net(x), before, atol=1e-5)


def test_groups_found_and_unsafe_folds_undone():
    torch.manual_seed(0)
    pre, post = PreNorm(), PostNorm()
    x = [torch.randn(64, 32) for _ in range(2)]
    assert find_groups(pre, x[0], {"a.weight": pre.a, "b.weight": pre.b, "out.weight": pre.out}) == {
        "norm": ["a.weight", "b.weight"]}  # out reads a ReLU's output: not foldable
    x[0][:, :4] *= 20
    state = copy.deepcopy(post.state_dict())
    report = awq_scale(post, x, {"fc.weight": GPTQHparams(bits=3)})
    assert report["norm"]["kept"] is False or report["norm"]["alpha"] == 0
    assert all(torch.equal(v, state[k]) for k, v in post.state_dict().items())  # undone bit-exactly


def test_awq_lowers_the_quantized_output_error_of_a_pre_norm_block():
    torch.manual_seed(0)
    net = PreNorm()
    calib = [torch.randn(128, 32) for _ in range(4)]
    test = torch.randn(256, 32)
    grids = {"a.weight": GPTQHparams(bits=3), "b.weight": GPTQHparams(bits=3)}

    def quantized_error(model):
        for name in grids:
            layer = getattr(model, name[0])
            with torch.no_grad():
                layer.weight.copy_(rounded(layer.weight, torch.ones(32), grids[name]))
        return float((model.features(test).detach() - reference).pow(2).mean())  # what the scaled layers output

    reference = net.features(test).detach()
    plain = quantized_error(copy.deepcopy(net))
    scaled = copy.deepcopy(net)
    report = awq_scale(scaled, calib, grids)
    assert report["norm"]["kept"] and report["norm"]["alpha"] > 0
    assert torch.allclose(scaled.features(test), reference, atol=1e-4)  # the same function before quantizing
    assert quantized_error(scaled) < 0.8 * plain


def test_recipe_option_and_errors(tmp_path):
    torch.manual_seed(0)
    net = PreNorm()
    calib = [torch.randn(64, 32) for _ in range(2)]
    recipe = tmp_path / "awq.yaml"
    recipe.write_text("name: awq\nstages:\n  - quantize: {method: gptq, bits: 3, awq: true, select: Linear}\n"
                      "  - encode: {coder: ans}\n")
    result = netpress.compress_pretrained(net, calib, recipe, out=tmp_path / "a.netp")
    assert result.model.netpress_awq["norm"]["kept"]
    loaded = netpress.load(tmp_path / "a.netp", model=PreNorm())
    assert torch.equal(loaded(calib[0]), result.model(calib[0]))
    with pytest.raises(ConfigError, match="plain Linear"):
        awq_scale(net, calib, {"norm.weight": GPTQHparams(bits=3)})
    recipe.write_text("stages:\n  - quantize: {method: uniform, bits: 3, awq: true}\n")
    with pytest.raises(ConfigError, match="awq"):
        netpress.compress_pretrained(PreNorm(), calib, recipe)
