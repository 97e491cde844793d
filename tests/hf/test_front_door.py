"""``netpress.compress_pretrained``: one call to a .netp file that rebuilds from its stored config, bit-identically."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import netpress
import netpress.hf
from netpress.errors import ConfigError
from netpress.pipeline.oneshot import OutputQuality, bits_per_name, load_pretrained_recipe, stage_tensors
from netpress.pipeline.recipe import RecipeError


@pytest.fixture
def encoder_and_inputs(tiny_folder, make_sentences):
    encoder, tokenizer = netpress.hf.load_folder(tiny_folder)
    calib = netpress.hf.TextInputs(make_sentences(32, seed=1), tokenizer, batch_size=8)
    held_out = netpress.hf.TextInputs(make_sentences(16, seed=2), tokenizer, batch_size=8)
    return encoder, calib, held_out


@pytest.mark.parametrize("recipe", ["pretrained-8bit", "pretrained-4bit", "pretrained-balanced", "pretrained-max"])
def test_front_door_writes_a_file_that_rebuilds_bit_identically(encoder_and_inputs, tmp_path, recipe):
    encoder, calib, held_out = encoder_and_inputs
    original = copy.deepcopy(encoder)
    quality = netpress.hf.EmbeddingQuality(original, held_out)
    result = netpress.compress_pretrained(encoder, calib, recipe, out=tmp_path / "m.netp", quality=quality)
    summary = result.summary()
    assert summary["bytes"] == (tmp_path / "m.netp").stat().st_size
    assert summary["ratio"] == pytest.approx(summary["fp32_bytes"] / summary["bytes"])
    assert summary["fp32_bytes"] == 4 * sum(p.numel() for p in original.parameters())
    assert summary["cosine_mean"] == pytest.approx(quality(result.model)["cosine_mean"])
    assert result.rows[0]["cosine_min"] == pytest.approx(1.0)
    assert 0.5 < summary["cosine_mean"] < 1.0  # lossy but close
    loaded = netpress.hf.load(tmp_path / "m.netp")  # architecture from the stored config, no original weights
    batch = next(iter(held_out))
    with torch.no_grad():
        assert torch.equal(loaded(**batch), result.model(**batch))
    assert "ratio" in result.report.read_text() or recipe in result.report.read_text()


def test_default_quality_is_output_cosine_against_the_original(encoder_and_inputs, tmp_path):
    encoder, calib, _ = encoder_and_inputs
    ref = netpress.hf.embed(copy.deepcopy(encoder), calib)
    result = netpress.compress_pretrained(encoder, calib, "pretrained-4bit")
    new = netpress.hf.embed(result.model, calib)
    cos = nn.functional.cosine_similarity(new, ref, dim=1)
    assert result.summary()["cosine_mean"] == pytest.approx(float(cos.mean()), abs=1e-6)
    assert result.summary()["cosine_min"] == pytest.approx(float(cos.min()), abs=1e-6)
    assert result.out is None and result.summary()["ratio"] is None


def test_any_module_with_tensor_inputs(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    calib = [torch.randn(8, 16) for _ in range(3)]
    quality = OutputQuality(net, calib)
    result = netpress.compress_pretrained(net, calib, "pretrained-8bit", out=tmp_path / "n.netp")
    assert result.summary()["cosine_min"] > 0.999  # 8 bits per channel is near lossless
    assert quality(net)["relative_mse"] == pytest.approx(result.summary()["relative_mse"])
    fresh = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    loaded = netpress.load(tmp_path / "n.netp", model=fresh)
    assert torch.equal(loaded(calib[0]), net(calib[0]))


def test_4bit_groups_only_the_weights_128_inputs_split(tmp_path):
    from netpress.quantize import export_codes

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 8))  # 2 groups of 128 / one short row
    calib = [torch.randn(16, 256) for _ in range(2)]
    result = netpress.compress_pretrained(net, calib, "pretrained-4bit", out=tmp_path / "g.netp")
    codes = export_codes(result.model)
    assert codes["0.weight"].group_size == 128 and codes["0.weight"].scale.numel() == 32 * 2
    assert codes["2.weight"].group_size == 0 and codes["2.weight"].scale.numel() == 8
    loaded = netpress.load(tmp_path / "g.netp", model=nn.Sequential(nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 8)))
    assert torch.equal(loaded(calib[0]), net(calib[0]))


def test_errors_before_any_work(encoder_and_inputs, tmp_path):
    encoder, calib, _ = encoder_and_inputs
    before = copy.deepcopy(encoder.state_dict())
    with pytest.raises(RecipeError, match="no recipe 'pretrained-9bit'.*pretrained-4bit"):
        netpress.compress_pretrained(encoder, calib, "pretrained-9bit", out=tmp_path / "x.netp")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - quantize: {bits: 4, select: [Linear, 'encoder.layerz.*']}\n")
    with pytest.raises(RecipeError, match=r"stages\[0\].quantize: selector 'encoder.layerz.\*' matches no tensor; closest: transformer.encoder"):
        netpress.compress_pretrained(encoder, calib, bad, out=tmp_path / "x.netp")
    bad.write_text("stages:\n  - quantize: {bits: {Embedding: 4}, select: [Linear, Embedding]}\n")
    with pytest.raises(RecipeError, match="no key covers"):
        netpress.compress_pretrained(encoder, calib, bad)
    bad.write_text("stages:\n  - prune: {method: magnitude, pattern: '2:4'}\n")
    with pytest.raises(ConfigError, match="data-aware"):
        netpress.compress_pretrained(encoder, calib, bad)
    assert all(torch.equal(v, before[k]) for k, v in encoder.state_dict().items())
    assert not (tmp_path / "x.netp").exists()


def test_stage_selection_by_type_and_pattern():
    net = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    assert stage_tensors(net, "Linear") == ["1.weight", "3.weight"]
    assert stage_tensors(net, ["Embedding", "Linear", "!3.*"]) == ["0.weight", "1.weight"]
    assert stage_tensors(net, "Conv") == []  # a type the model lacks: the stage is skipped
    with pytest.raises(ConfigError, match="'4.\\*' matches no tensor"):
        stage_tensors(net, "4.*")
    assert bits_per_name(net, ["0.weight", "1.weight"], {"Embedding": 3, "*": 5}) == {"0.weight": 3, "1.weight": 5}


def test_builtin_pretrained_recipes_parse():
    for name in netpress.pipeline.PRETRAINED:
        recipe = load_pretrained_recipe(name)
        assert recipe.stages[-1].kind == "encode" and recipe.name == name


@pytest.mark.parametrize("stages", [
    "  - prune: {method: sparsegpt, pattern: '2:4', select: Linear}\n  - quantize: {method: gptq, bits: 4, select: Linear}\n",
    "  - prune: {method: wanda, sparsity: 0.5, select: Linear}\n"
    "  - quantize: {method: gptq-kmeans, bits: {'*.intermediate.*': 3, '*': 5}, select: Linear}\n",
])
def test_data_aware_stages_round_trip(encoder_and_inputs, tmp_path, stages):
    encoder, calib, held_out = encoder_and_inputs
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - quantize: {method: kmeans, bits: 4, select: Embedding}\n" + stages
                      + "  - encode: {coder: ans}\n")
    result = netpress.compress_pretrained(encoder, calib, recipe, out=tmp_path / "m.netp")
    loaded = netpress.hf.load(tmp_path / "m.netp")
    batch = next(iter(held_out))
    with torch.no_grad():
        assert torch.equal(loaded(**batch), result.model(**batch))
    w = loaded.transformer.encoder.layer[0].intermediate.dense.weight
    if "2:4" in stages:  # the masks keep exactly 2 of every 4 consecutive inputs; the file holds those zeros
        from netpress.prune.masks import get_masks

        mask = get_masks(result.model)["transformer.encoder.layer.0.intermediate.dense.weight"]
        assert (mask.reshape(mask.shape[0], -1, 4).sum(-1) == 2).all()
        assert (w[mask == 0] == 0).all()
    else:
        assert (w == 0).float().mean() == pytest.approx(0.5, abs=0.01)
        assert len(torch.unique(w[w != 0])) <= 8  # 3 bits for the intermediate layers, 5 elsewhere
        other = loaded.transformer.encoder.layer[0].output.dense.weight
        assert 8 < len(torch.unique(other[other != 0])) <= 32
