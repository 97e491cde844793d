import json

import torch
from safetensors.torch import load_file

import netpress
from netpress.cli.main import main
from netpress.data import load_data
from netpress.models import build_model
from netpress.prune.masks import plain_state_dict
from netpress.quantize import share_weights
from netpress.train import evaluate

from encode_helpers import magnitude_prune


def _saved(tmp_path):
    data = load_data("synthetic")
    model = build_model("lenet300", data.input_shape, data.num_classes, seed=0)
    model = share_weights(magnitude_prune(model, 0.2), 5)
    path = tmp_path / "s.netp"
    acc = evaluate(model, data.test).accuracy
    netpress.save(model, path, metrics={"test_accuracy": acc})
    return path, model, acc


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_inspect_decompress_evaluate(tmp_path, capsys):
    path, model, acc = _saved(tmp_path)
    assert main(["inspect", str(path), "--json", "--streams"]) == 0
    report = _last_json(capsys)
    fc1 = report["tensors"][[t["name"] for t in report["tensors"]].index("features.0.weight")]
    assert 0.19 < fc1["kept_fraction"] < 0.21 and fc1["bits"] == 5 and report["file_bytes"] == path.stat().st_size
    assert all(s["bits_per_symbol"] + 1e-9 >= s["entropy"] for s in report["streams"] if s["coding"] != "packed")
    assert main(["inspect", str(path)]) == 0
    assert "features.0.weight" in capsys.readouterr().out

    out = tmp_path / "s.safetensors"
    assert main(["decompress", str(path), "--out", str(out), "--json"]) == 0
    tensors = load_file(str(out))
    assert all(torch.equal(tensors[k], v) for k, v in plain_state_dict(model).items())
    capsys.readouterr()

    assert main(["evaluate", str(path), "--data", "synthetic", "--json"]) == 0
    result = _last_json(capsys)
    assert result["test_accuracy"] == acc == result["saved_test_accuracy"]


def test_cli_reports_bad_files_as_errors(tmp_path, capsys):
    bad = tmp_path / "bad.netp"
    bad.write_bytes(b"not a netp file at all")
    assert main(["inspect", str(bad)]) == 2
    assert "header" in capsys.readouterr().err
