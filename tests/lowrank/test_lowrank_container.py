"""A factorized model goes through the .netp container and runs after loading into a same-rank skeleton."""
import torch

import netpress
from netpress.lowrank import LowRankHparams, apply_ranks, low_rank
from netpress.models import build_model


def test_factorized_model_round_trips_through_netp(tmp_path):
    model = build_model("lenet300", (1, 8, 8), 4, seed=0)
    res = low_rank(model, LowRankHparams(ratio=3.0))
    path = tmp_path / "lowrank.netp"
    netpress.save(res.model, path)
    skeleton, _ = apply_ranks(build_model("lenet300", (1, 8, 8), 4, seed=1), res.ranks)
    loaded = netpress.load(path, model=skeleton)
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), res.model.eval()(x), rtol=0, atol=0)
    assert res.model.netpress_spec["low_rank"] == res.ranks  # what a loader needs to rebuild the skeleton


def test_registry_model_reloads_factorized_without_a_skeleton(tmp_path):
    model = build_model("lenet300", (1, 8, 8), 4, seed=0)
    res = low_rank(model, LowRankHparams(ratio=3.0))
    path = tmp_path / "lowrank.netp"
    netpress.save(res.model, path)
    loaded = netpress.load(path)  # the spec's low_rank ranks rebuild the factorized architecture
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), res.model.eval()(x))
