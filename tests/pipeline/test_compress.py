"""End-to-end compression on synthetic data: compress -> .netp -> load -> same predictions; resume after a kill."""
import copy
import json

import pytest
import torch

import netpress
from netpress.models import build_model
from netpress.pipeline import compress, parse_recipe
from netpress.pipeline import stages as stages_module
from netpress.prune.masks import plain_state_dict
from netpress.train import TrainingHparams, evaluate, train

RECIPE = parse_recipe({"name": "tiny", "stages": [
    {"prune": {"schedule": "iterative", "rounds": 2, "layers": {"last": 0.5}, "sparsity": 0.8,
               "retrain": {"steps": "1ep", "lr": 0.02}}},
    {"quantize": {"method": "kmeans", "bits": 4, "finetune": {"steps": "1ep", "lr": 0.01}}},
    {"encode": {"coder": "huffman"}},
]})
HP = TrainingHparams(steps="3ep", batch_size=100, lr=0.05)


@pytest.fixture()
def trained(synthetic):
    model = build_model("lenet300", synthetic.input_shape, synthetic.num_classes, seed=0)
    train(model, synthetic, HP, device="cpu")
    return model


def test_compress_load_evaluate_same_predictions(trained, synthetic, tmp_path):
    out = tmp_path / "tiny.netp"
    result = compress(trained, synthetic, recipe=RECIPE, train_hp=HP, out=out, report_dir=tmp_path / "report",
                      device="cpu")
    assert [r["stage"] for r in result.rows] == ["dense", "prune", "quantize", "encode"]
    dense, pruned, quantized, encoded = result.rows
    assert pruned["sparsity"] == pytest.approx(0.8 * (1 - 400 / 50_000) + 0.5 * 400 / 50_000, abs=2e-3)
    assert encoded["bytes"] == out.stat().st_size < quantized["bytes"] < pruned["bytes"] < dense["bytes"]
    # 80% pruned, 4-bit: ~8 bits per kept weight with its index; biases and the ~1 KB manifest weigh on 50K weights
    assert encoded["ratio"] > 10 and encoded["test_accuracy"] > 0.9
    for name, w in result.final_weights.items():  # <= 16 shared values per layer, pruned zeros kept
        assert len(torch.unique(w[w != 0])) <= 16, name

    loaded = netpress.load(out)
    x = synthetic.test.x
    with torch.no_grad():
        assert torch.equal(loaded(x), result.model(x))
    assert evaluate(loaded, synthetic.test).accuracy == encoded["test_accuracy"]

    assert result.layers and {"name"} <= set(result.layers[0])
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| encode |" in report and (tmp_path / "report" / "weights.png").stat().st_size > 1000


class Killed(Exception):
    pass


def test_killed_compression_resumes_to_the_same_model(trained, synthetic, tmp_path, monkeypatch):
    reference = compress(copy.deepcopy(trained), synthetic, recipe=RECIPE, train_hp=HP, out=tmp_path / "ref.netp",
                         device="cpu")

    real_train, calls = stages_module.train, []

    def dying_train(*args, **kwargs):
        calls.append(kwargs.get("desc"))
        if len(calls) == 3:  # prune round 1, prune round 2, then die in centroid fine-tuning
            raise Killed
        return real_train(*args, **kwargs)

    monkeypatch.setattr(stages_module, "train", dying_train)
    work = tmp_path / "work"
    with pytest.raises(Killed):
        compress(copy.deepcopy(trained), synthetic, recipe=RECIPE, train_hp=HP, out=tmp_path / "a.netp",
                 workdir=work, device="cpu")
    assert (work / "00_prune" / "done.json").exists() and not (work / "01_quantize" / "done.json").exists()

    calls.clear()
    monkeypatch.setattr(stages_module, "train", lambda *a, **k: (calls.append(k.get("desc")), real_train(*a, **k))[1])
    resumed = compress(copy.deepcopy(trained), synthetic, recipe=RECIPE, train_hp=HP, out=tmp_path / "a.netp",
                       workdir=work, device="cpu")
    assert calls == ["centroid fine-tune"]  # the finished prune stage was restored, not re-run
    ref_w, got_w = plain_state_dict(reference.model), plain_state_dict(resumed.model)
    for k in ref_w:
        assert torch.equal(ref_w[k], got_w[k]), k
    assert [r["test_accuracy"] for r in resumed.rows] == [r["test_accuracy"] for r in reference.rows]

    calls.clear()  # everything done: nothing trains again, same numbers
    again = compress(copy.deepcopy(trained), synthetic, recipe=RECIPE, train_hp=HP, out=tmp_path / "a.netp",
                     workdir=work, device="cpu")
    assert calls == [] and again.rows == resumed.rows
    assert json.loads((work / "recipe.json").read_text())["name"] == "tiny"


def test_compress_cli_json(tmp_path, capsys):
    from netpress.cli.main import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"stages": [{"prune": {"rounds": 1, "sparsity": 0.5, "retrain": {"steps": "1ep"}}},
                                             {"quantize": {"bits": 5}}, {"encode": {}}]}))
    out = tmp_path / "m.netp"
    code = main(["compress", "--model", "lenet300", "--data", "synthetic", "--steps", "2ep", "--recipe", str(recipe),
                 "--out", str(out), "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out.exists() and result["bytes"] == out.stat().st_size
    assert result["ratio"] > 5 and 0 <= result["test_accuracy"] <= 1 and result["sparsity"] > 0.45
    assert [s["stage"] for s in result["stages"]] == ["dense", "prune", "quantize", "encode"]


def test_compress_cli_bad_recipe_fails_before_training(tmp_path, capsys):
    from netpress.cli.main import main
    from netpress.runs import runs_root

    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - prune: {sparsity: 2}\n")
    assert main(["compress", "--data", "synthetic", "--recipe", str(bad)]) == 2
    assert "stages[0].prune.sparsity: must be a fraction" in capsys.readouterr().err
    assert not list(runs_root().glob("train_*"))


class UserCNN(torch.nn.Module):
    """A model netpress did not write: conv + BatchNorm + a Linear head, no netpress_spec."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                        torch.nn.Flatten())
        self.head = torch.nn.Linear(8 * 8 * 8, 4)

    def forward(self, x):
        return self.head(self.body(x))


def test_public_api_on_a_user_model_with_plain_datasets(synthetic, tmp_path):
    torch.manual_seed(0)
    model = UserCNN()
    train(model, synthetic, HP.replace(steps="2ep"), device="cpu")
    recipe = parse_recipe({"stages": [{"prune": {"rounds": 1, "sparsity": 0.7, "retrain": {"steps": "1ep", "lr": 0.01}}},
                                      {"quantize": {"bits": {"conv": 6, "fc": 4}}}, {"encode": {"coder": "ans"}}]})
    out = tmp_path / "user.netp"
    result = netpress.compress(model, synthetic.train, synthetic.val, recipe, test_data=synthetic.test, out=out,
                               train_hp=HP, device="cpu")
    # the 72-weight conv keeps 22 weights after 70% pruning: 6 bits (64 centroids) is cut to 4 (16 <= 22)
    assert result.rows[-1]["test_accuracy"] > 0.9 and result.notes["bits"] == {"body.0.weight": 4, "head.weight": 4}
    with pytest.raises(Exception, match="model"):
        netpress.load(out)  # no registry spec: the user must pass the architecture
    loaded = netpress.load(out, model=UserCNN()).eval()
    with torch.no_grad():
        assert torch.equal(loaded(synthetic.test.x), result.model.eval()(synthetic.test.x))


def test_global_scope_ranks_layers_together(trained, synthetic):
    recipe = parse_recipe({"stages": [{"prune": {"schedule": "oneshot", "scope": "global", "sparsity": 0.5,
                                                 "layers": {"last": 0.1}}}]})
    result = compress(trained, synthetic, recipe=recipe, train_hp=HP, device="cpu")
    w = result.final_weights
    per_layer = {n: float((t == 0).float().mean()) for n, t in w.items()}
    assert per_layer["fc_out.weight"] == pytest.approx(0.1, abs=0.01)  # its own rate
    others = [n for n in w if n != "fc_out.weight"]
    zeros = sum(int((w[n] == 0).sum()) for n in others)
    assert zeros / sum(w[n].numel() for n in others) == pytest.approx(0.5, abs=0.002)
    assert abs(per_layer[others[0]] - per_layer[others[1]]) > 0.02  # global ranking: not 0.5 in every layer


def test_resumed_compression_keeps_stage_metrics_in_the_file(trained, synthetic, tmp_path):
    from netpress.encode import read_manifest

    recipe = parse_recipe({"stages": [{"prune": {"rounds": 1, "sparsity": 0.5}}, {"encode": {}}]})
    out, work = tmp_path / "m.netp", tmp_path / "work"
    compress(copy.deepcopy(trained), synthetic, recipe=recipe, train_hp=HP, out=out, workdir=work, device="cpu")
    first = read_manifest(out)["metrics"]
    out.unlink()  # the encode stage re-runs; the prune stage is restored
    compress(copy.deepcopy(trained), synthetic, recipe=recipe, train_hp=HP, out=out, workdir=work, device="cpu")
    assert read_manifest(out)["metrics"] == first and first["test_accuracy"] == first["prune_accuracy"]


def test_uniform_quantize_stage_gives_per_channel_codes_at_the_recipes_bits(trained, synthetic, tmp_path):
    recipe = parse_recipe({"stages": [{"quantize": {"method": "uniform", "bits": {"last": 8, "*": 4}}},
                                      {"encode": {"coder": "huffman"}}]})
    out = tmp_path / "u.netp"
    result = compress(trained, synthetic, recipe=recipe, train_hp=HP, out=out, device="cpu")
    rows = {t["name"]: t for t in netpress.encode.read_manifest(out)["tensors"]}
    assert rows["fc_out.weight"]["bits"] == 8 and rows["features.0.weight"]["bits"] == 4
    assert all("affine" in rows[n] for n in ("features.0.weight", "fc_out.weight"))  # scale + zero point per channel
    levels = {n: len(torch.unique(w)) for n, w in result.final_weights.items() if n.endswith("weight")}
    assert levels["features.0.weight"] <= 16 * trained.features[0].weight.shape[0]
