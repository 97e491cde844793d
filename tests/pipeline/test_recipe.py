import pytest
import yaml

from netpress.models import build_model
from netpress.pipeline.recipe import (BUILTIN, RecipeError, layer_refs, layer_value, load_recipe, parse_recipe)


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_recipes_validate(name):
    recipe = load_recipe(name)
    assert recipe.stages[-1].kind == "encode"


def test_user_recipe_file(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump({"stages": [{"prune": {"sparsity": 0.5, "rounds": 1}}, {"encode": {"coder": "ans"}}]}))
    r = load_recipe(p)
    assert r.name == "mine" and r.stages[0].hparams.sparsity == 0.5 and r.stages[1].hparams.coder == "ans"


@pytest.mark.parametrize("doc,message", [
    ({"stages": [{"prune": {"sparsity": 1.5}}]}, "stages[0].prune.sparsity: must be a fraction"),
    ({"stages": [{"prune": {"sparsty": 0.5}}]}, "stages[0].prune.sparsty: unknown key; known: schedule"),
    ({"stages": [{"encode": {}}, {"quantize": {"bits": 0}}]}, "stages[1].quantize.bits: must be an integer in 1-16"),
    ({"stages": [{"quantize": {"bits": {"fc": 40}}}]}, "stages[0].quantize.bits.fc: must be an integer in 1-16"),
    ({"stages": [{"quantize": {"finetune": {"lr": -1}}}]}, "stages[0].quantize.finetune.lr must be > 0"),
    ({"stages": [{"quantize": {"finetune": {"epochs": 3}}}]}, "stages[0].quantize.finetune: "),
    ({"stages": [{"prune": {"retrain": {"steps": "3"}}}]}, "stages[0].prune.retrain.cannot parse steps"),
    ({"stages": [{"shrink": {}}]}, "stages[0].shrink: unknown stage; known: train, prune"),
    ({"stages": [{"encode": {}}, {"prune": {}}]}, "stages[0].encode: must be the last stage"),
    ({"stages": [{"prune": {}, "encode": {}}]}, "stages[0]: each stage is a mapping with one key"),
    ({"stages": []}, "stages: must be a non-empty list"),
    ({"stagez": []}, "stagez: unknown key"),
    ({"stages": [{"train": {"lr": 0}}]}, "stages[0].train.lr must be > 0"),
    ({"stages": [{"distill": {"temperature": 0}}]}, "stages[0].distill.temperature: must be > 0"),
    ({"stages": [{"lowrank": {"energy": 1.5}}]}, "stages[0].lowrank.energy: must be in (0, 1]"),
    ({"stages": [{"quantize": {"calibration": 512}}]}, "stages[0].quantize.calibration: used only by method ecsq"),
    ({"stages": [{"quantize": {"method": "ecsq", "calibration": -1}}]},
     "stages[0].quantize.calibration: must be a number of examples >= 0"),
    ({"stages": [{"quantize": {"qat": {"steps": "1ep"}}}]}, "stages[0].quantize.qat: used only by method ecsq"),
    ({"stages": [{"quantize": {"method": "ecsq", "qat": {"epochs": 3}}}]}, "stages[0].quantize.qat: "),
])
def test_bad_recipes_name_the_key(doc, message):
    with pytest.raises(RecipeError) as exc:
        parse_recipe(doc)
    assert str(exc.value).startswith(message), str(exc.value)


def test_unknown_recipe_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="built-in recipes are deep-compression"):
        load_recipe("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [prune: {")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(bad)


def test_digest_ignores_names_and_defaults():
    a = parse_recipe({"name": "a", "stages": [{"prune": {"sparsity": 0.9}}]})
    b = parse_recipe({"name": "b", "stages": [{"prune": {"sparsity": 0.9, "rounds": 3}}]})  # 3 is the default
    c = parse_recipe({"stages": [{"prune": {"sparsity": 0.8}}]})
    assert a.digest() == b.digest() != c.digest()


def test_layer_selectors_on_lenet5_and_lenet300():
    table = {"conv[0]": 0.34, "conv": 0.88, "last": 0.78, "fc": 0.92, "classifier.0.*": 0.5}
    lenet5 = {r.name: layer_value(table, r) for r in layer_refs(build_model("lenet5", (1, 28, 28), 10))}
    assert lenet5 == {"features.0.weight": 0.34, "features.2.weight": 0.88,
                      "classifier.0.weight": 0.5, "classifier.2.weight": 0.78}
    lenet300 = {r.name: layer_value(table, r) for r in layer_refs(build_model("lenet300", (1, 28, 28), 10))}
    assert lenet300 == {"features.0.weight": 0.92, "features.2.weight": 0.92, "fc_out.weight": 0.78}
    assert layer_value(5, layer_refs(build_model("lenet300", (1, 8, 8), 4))[0]) == 5
    assert layer_value({"conv": 8}, layer_refs(build_model("lenet300", (1, 8, 8), 4))[0], default=32) == 32
