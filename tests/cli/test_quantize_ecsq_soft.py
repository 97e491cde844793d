"""``quantize --method ecsq`` and ``--method soft-sharing`` from the command line against the library calls they
stand for, and their bad values as one-line errors before training."""
from __future__ import annotations

import json

import pytest
import torch

from netpress.cli.main import main
from netpress.encode import read_manifest
from netpress.quantize.ecsq import ecsq

QUANT = ["quantize", "--model", "lenet300", "--data", "synthetic", "--steps", "1ep", "--json"]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _dense(tmp_path, capsys) -> dict:
    """The dense model the quantize command trains first (same runs folder, so the later runs reuse it)."""
    assert main(QUANT + ["--runs-dir", str(tmp_path), "--method", "kmeans", "--bits", "8"]) == 0
    return _last_json(capsys)


def test_quantize_ecsq_matches_the_library_and_lowers_the_rate(tmp_path, capsys):
    import netpress
    from netpress.prune.masks import plain_state_dict

    rates = {}
    for lam in (0.0, 0.3):
        out = tmp_path / f"e{lam}.netp"
        assert main(QUANT + ["--runs-dir", str(tmp_path), "--method", "ecsq", "--bits", "4", "--lam", str(lam),
                             "--out", str(out)]) == 0
        res = _last_json(capsys)
        assert res["method"] == "ecsq" and all(r["method"] == "ecsq" for r in res["layers"])
        w = plain_state_dict(netpress.load(out))["features.0.weight"]
        rates[lam] = len(torch.unique(w))
        methods = {t.get("method") for t in read_manifest(out)["tensors"] if t["kind"] == "codes"}
        assert methods == {"ecsq"}  # the file says how its levels were made
    assert rates[0.3] < rates[0.0] <= 16  # a positive rate weight leaves fewer levels


def test_ecsq_relative_rate_weight_is_the_library_one():
    """The CLI's relative lam times the variance is ecsq's absolute lam (the same assignment)."""
    from netpress.models import build_model
    from netpress.quantize.methods import QuantizeHparams, quantize_model
    from netpress.prune.masks import plain_state_dict

    net = build_model("lenet300", (1, 8, 8), 4, seed=0)
    w = net.features[0].weight.detach().clone().reshape(-1)
    quantize_model(net, QuantizeHparams(method="ecsq", bits=3, lam=0.2))
    ref = ecsq(w, 3, 0.2 * float(w.var()))
    got = plain_state_dict(net)["features.0.weight"].reshape(-1)
    torch.testing.assert_close(got, ref.centroids[ref.labels])


def test_quantize_soft_sharing_trains_a_prior_and_quantizes(tmp_path, capsys):
    argv = QUANT + ["--runs-dir", str(tmp_path), "--method", "soft-sharing", "--bits", "3", "--finetune", "20it",
                    "--tau", "0.005"]
    assert main(argv) == 0
    res = _last_json(capsys)
    assert res["method"] == "soft-sharing" and all(r["method"] == "soft_sharing" for r in res["layers"])
    assert all(r["bits"] <= 3 for r in res["layers"]) and res["accuracy_drop"] < 0.2


@pytest.mark.parametrize("extra,message", [
    (["--method", "ecsq", "--lam", "-1"], "lam must be >= 0"),
    (["--method", "soft-sharing", "--tau", "-0.1"], "tau must be >= 0"),
    (["--method", "ecsq", "--bits", "0"], "bits must be an integer from 1 to 16"),
])
def test_bad_ecsq_and_soft_sharing_values_fail_before_training(tmp_path, capsys, extra, message):
    assert main(QUANT + ["--runs-dir", str(tmp_path)] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.glob("train_*"))
