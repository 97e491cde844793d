"""Lottery replicates trained level by level with stacked parameters give the sequential experiment's numbers."""
import json

import pytest
import torch

from lottery_helpers import DATA, MODEL, TRAIN, tiny
from netpress.errors import ConfigError
from netpress.lottery import run_lottery
from netpress.lottery.stages import load_stage


@pytest.mark.parametrize("rewind", ["0it", "20it"])
def test_batched_replicates_equal_sequential(tmp_path, data, rewind):
    hp = tiny(replicates=2, rewind=rewind, lmc_levels="1", lmc_points=3)
    seq = run_lottery(MODEL, DATA, TRAIN, hp, root=tmp_path / "seq", data=data, device="cpu")
    bat = run_lottery(MODEL, DATA, TRAIN, hp, root=tmp_path / "bat", data=data, device="cpu", batch_replicates=True)
    assert seq.id == bat.id and len(seq.rows) == len(bat.rows) == 2 * (1 + 2 * 4)
    for a, b in zip(seq.rows, bat.rows):
        assert (a["replicate"], a["level"], a["branch"]) == (b["replicate"], b["level"], b["branch"])
        assert a["remaining"] == pytest.approx(b["remaining"], abs=1e-3)
        assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=0.01)
    for rep in range(2):
        stage = f"replicate_{rep}/level_02/reinit"
        s, b = load_stage(seq.path / stage), load_stage(bat.path / stage)
        agree = torch.cat([(s["masks"][k] == b["masks"][k]).flatten() for k in s["masks"]]).float().mean()
        assert agree > 0.999
        for k in s["state"]:
            assert torch.allclose(s["state"][k], b["state"][k], atol=1e-3), k
    for path in (seq.path, bat.path):  # wall time is kept apart: results stay a function of the settings
        timing = json.loads((path / "replicate_1" / "level_02" / "reinit" / "timing.json").read_text())
        assert timing["seconds"] > 0 and "seconds" not in bat.rows[-1]
    assert json.loads((bat.path / "replicate_1" / "level_02" / "reinit" / "timing.json").read_text())["batched"] == 2 * 4
    assert len(bat.summary["lmc"]) == 1 and bat.summary["lmc"][0]["barrier"]["n"] == 2
    assert not (bat.path / "batched").exists() or not any((bat.path / "batched").iterdir())


def test_batched_replicates_refuse_callbacks(tmp_path, data):
    with pytest.raises(ConfigError, match="callbacks"):
        run_lottery(MODEL, DATA, TRAIN, tiny(), root=tmp_path, data=data, device="cpu", batch_replicates=True,
                    callbacks=[object()])
