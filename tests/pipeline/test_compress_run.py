"""``compress_run``: a stored run compressed in a locked working folder that records its thread count."""
from __future__ import annotations

import json

import pytest
import torch

import netpress.pipeline.runs as pruns
from netpress.data import DataHparams
from netpress.models import ModelHparams
from netpress.pipeline import compress_run, parse_recipe
from netpress.runs import train_run
from netpress.train import TrainingHparams

RECIPE = parse_recipe({"stages": [{"prune": {"rounds": 1, "sparsity": 0.5, "retrain": {"steps": "1ep"}}},
                                  {"quantize": {"bits": 4}}, {"encode": {}}]}, "tiny")


def test_compress_run_resumes_with_the_thread_count_it_started_with(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    start = train_run(ModelHparams("lenet300"), DataHparams("synthetic"), TrainingHparams(steps="1ep"), root=tmp_path)
    seen, real = [], pruns.compress

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(pruns, "compress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compress_run(start, RECIPE, out=tmp_path / "m.netp", root=tmp_path)
    (work,) = tmp_path.glob("compress_*")
    assert json.loads((work / "threads.json").read_text()) == {"torch_threads": 1}

    def spy(*a, **kw):
        seen.append(torch.get_num_threads())
        return real(*a, **kw)

    monkeypatch.setattr(pruns, "compress", spy)
    torch.set_num_threads(2)
    result = compress_run(start, RECIPE, out=tmp_path / "m.netp", root=tmp_path)
    assert seen == [1] and torch.get_num_threads() == 2
    assert result.folder == work and (tmp_path / "m.netp").stat().st_size == result.rows[-1]["bytes"]
    assert (tmp_path / "m_report" / "report.md").exists()
