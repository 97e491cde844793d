"""Recipe per-layer keys on any model: types, patterns, kinds incl. embeddings; keys matching nothing fail early."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from netpress.pipeline import compress, parse_recipe
from netpress.pipeline.recipe import RecipeError, check_layer_keys, layer_refs, layer_value


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(30, 8)
        self.dense = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        return self.classifier(self.norm(self.dense(self.embedding(x)).mean(1)))


def bits_recipe(bits):
    return parse_recipe({"stages": [{"quantize": {"bits": bits}}]})


def test_layer_refs_include_embeddings_and_keys_resolve():
    refs = {r.name: r for r in layer_refs(Encoder())}
    assert list(refs) == ["embedding.weight", "dense.weight", "classifier.weight"]
    assert [r.kind for r in refs.values()] == ["embedding", "fc", "fc"]
    table = {"Embedding": 6, "re:.*dense$": 5, "last": 3, "*": 8}
    assert {n: layer_value(table, r) for n, r in refs.items()} == {"embedding.weight": 6, "dense.weight": 5,
                                                                   "classifier.weight": 3}
    assert layer_value({"embedding": 4, "fc[1]": 2}, refs["classifier.weight"], 7) == 2
    assert layer_value({"embedding": 4}, refs["embedding.weight"]) == 4
    assert layer_value({"classifier": 4}, refs["classifier.weight"]) == 4  # module name


@pytest.mark.parametrize("key, closest", [("banana", "matches no layer"), ("embeding", "embedding"),
                                          ("dense.wieght", "dense.weight"), ("conv", "matches no layer"),
                                          ("Conv*", "matches no layer"), ("fc[2]", "fc[1]")])
def test_recipe_key_matching_nothing_is_an_error(key, closest):
    with pytest.raises(RecipeError, match=rf"stages\[0\]\.quantize\.bits\.{key.replace('[', '.').replace('*', '.')}.*{closest.replace('[', '.')}"):
        check_layer_keys(bits_recipe({key: 4, "*": 8}), Encoder())


def test_prune_layers_keys_are_checked_too():
    recipe = parse_recipe({"stages": [{"prune": {"layers": {"encoder.*": 0.5}}}]})
    with pytest.raises(RecipeError, match=r"stages\[0\]\.prune\.layers\.encoder\.\*"):
        check_layer_keys(recipe, Encoder())


def test_compress_fails_before_any_work_on_an_unknown_key(synthetic):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, synthetic.num_classes))
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(RecipeError, match="banana"):
        compress(model, synthetic, recipe=bits_recipe({"banana": 4}), device="cpu")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_tiny_bert_selection():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64)
    torch.manual_seed(0)
    bert = transformers.BertModel(config)
    refs = layer_refs(bert)
    kinds = {r.kind for r in refs}
    assert kinds == {"embedding", "fc"}
    assert "embeddings.word_embeddings.weight" in {r.name for r in refs}
    table = {"encoder.layer.*.attention.*": 4, "Embedding": 6, "*": 8}
    got = {r.name: layer_value(table, r) for r in refs}
    assert got["encoder.layer.1.attention.self.query.weight"] == 4
    assert got["embeddings.position_embeddings.weight"] == 6 and got["pooler.dense.weight"] == 8
    with pytest.raises(RecipeError, match="closest: encoder.layer"):
        check_layer_keys(bits_recipe({"encoder.layers.*": 4}), bert)
