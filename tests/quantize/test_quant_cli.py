"""``netpress quantize``: each method end to end on tiny data; bad input is a clean error before training."""
from __future__ import annotations

import json

import pytest

from netpress.cli.main import main

BASE = ["quantize", "--model", "lenet300", "--data", "synthetic", "--steps", "1ep", "--json"]


@pytest.mark.parametrize("extra", [
    ["--method", "kmeans", "--bits", "3", "--init", "linear", "--finetune", "5it"],
    ["--method", "uniform", "--bits", "4", "--granularity", "channel", "--calibration", "mse"],
    ["--method", "ptq", "--w", "8", "--a", "8"],
])
def test_quantize_methods(tmp_path, capsys, extra):
    assert main(BASE + ["--runs-dir", str(tmp_path)] + extra) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["method"] == extra[1] and 0 <= out["test_accuracy"] <= 1
    assert out["ratio"] > 1 and out["layers"] and out["bytes"] < out["float_bytes"]


@pytest.mark.parametrize("extra,message", [
    (["--method", "kmeans", "--bits", "17"], "1 to 16"),
    (["--method", "uniform", "--bits", "0"], "1 to 16"),
    (["--method", "uniform", "--granularity", "group"], "group_size"),
    (["--method", "kmeans", "--init", "nope"], "init"),
    (["--method", "mixed"], "budget"),
    (["--method", "magic"], "unknown method"),
    (["--method", "kmeans", "--exclude", "fc_out.wieght"], "closest: fc_out.weight"),
    (["--method", "uniform", "--select", "Embedding"], "chooses no tensor"),
    (["--method", "ptq", "--select", "re:.*attention.*"], "'re:.*attention.*' matches no tensor"),
])
def test_bad_input_is_an_error_before_training(tmp_path, capsys, extra, message):
    assert main(BASE + ["--runs-dir", str(tmp_path)] + extra) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.glob("train_*"))  # nothing was trained


def test_select_and_exclude_choose_the_layers(tmp_path, capsys):
    extra = ["--method", "uniform", "--bits", "4", "--select", "re:features\\..*", "--exclude", "features.0.weight"]
    assert main(BASE + ["--runs-dir", str(tmp_path)] + extra) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = [r["layer"] for r in out["layers"]]
    assert names and all(n.startswith("features.") for n in names) and "features.0.weight" not in names
