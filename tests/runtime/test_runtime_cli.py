"""``netpress inspect --runtime`` and ``netpress export --onnx`` end to end on a saved pruned + quantized LeNet."""
from __future__ import annotations

import json
import warnings

import pytest

import netpress
from netpress.cli.main import main
from netpress.models import build_model
from netpress.prune import prune
from netpress.quantize import share_weights

warnings.filterwarnings("ignore")


def _saved(tmp_path):
    net = share_weights(prune(build_model("lenet300", (1, 28, 28), 10, seed=0), 0.92), bits=5)
    path = tmp_path / "m.netp"
    netpress.save(net, path)
    return path


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_inspect_runtime_prints_and_caches_the_plan(tmp_path, capsys):
    path, cache = _saved(tmp_path), tmp_path / "timings.json"
    assert main(["inspect", str(path), "--runtime", "--runtime-cache", str(cache), "--json"]) == 0
    r = _last_json(capsys)
    names = [layer["name"] for layer in r["plan"]["layers"]]
    assert names == ["features.0", "features.2", "fc_out"] and cache.exists()
    assert all(layer["kind"] in layer["seconds"] for layer in r["plan"]["layers"])
    assert r["resident_bytes"] < r["dense_bytes"]
    assert main(["inspect", str(path), "--runtime", "--runtime-cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "runtime plan" in out and "features.0" in out


def test_export_onnx_cli(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    path, out = _saved(tmp_path), tmp_path / "m.onnx"
    assert main(["export", str(path), "--onnx", str(out), "--batch", "4", "--json"]) == 0
    r = _last_json(capsys)
    assert out.exists() and len(r["quantized"]) == 3
    assert r["max_abs_diff"] <= 0.02 * r["max_abs_output"]  # k-means weights re-quantized to int8 (<= 1/254)
    assert main(["export", str(path), "--onnx", str(out), "--batch", "0"]) == 2
    assert "netpress: error: batch" in capsys.readouterr().err
