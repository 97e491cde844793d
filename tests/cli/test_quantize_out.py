"""``netpress quantize --out`` writes a ``.netp`` file that loads back to the quantized weights."""
from __future__ import annotations

import json

import pytest
import torch

import netpress
from netpress.cli.main import main
from netpress.data import load_data
from netpress.encode.container import MAGIC
from netpress.train import evaluate

BASE = ["quantize", "--model", "lenet300", "--data", "digits", "--steps", "1ep", "--json"]


@pytest.mark.parametrize("extra,levels", [
    (["--method", "kmeans", "--bits", "3"], 2 ** 3 + 1),  # + the pruned/zero value
    (["--method", "ptq", "--w", "4", "--a", "8"], 2 ** 4),  # per output channel
])
def test_quantize_out_is_a_netp_that_reloads(tmp_path, capsys, extra, levels):
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "q.netp"
    assert main(BASE + extra + ["--out", str(path)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert path.read_bytes()[:len(MAGIC)] == MAGIC and out["file_bytes"] == path.stat().st_size
    model = netpress.load(path)
    assert evaluate(model, load_data("digits").test).accuracy == out["file_test_accuracy"]
    if extra[1] == "kmeans":  # weights only: the file is exactly the quantized model
        assert out["file_test_accuracy"] == out["test_accuracy"]
    for name, w in model.state_dict().items():
        if name.endswith("weight"):
            assert max(len(torch.unique(row)) for row in w.reshape(w.shape[0], -1)) <= levels, name
    assert sorted(p.name for p in path.parent.iterdir()) == ["q.netp"]  # no temporary left behind
