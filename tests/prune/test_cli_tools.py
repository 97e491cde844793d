"""CLI prune/sensitivity, accounting, sensitivity plot, CSR swap."""
import json

import pytest
import torch
from torch import nn

from netpress.cli.main import main
from netpress.prune import prune, strip
from netpress.prune.accounting import account
from netpress.prune.sensitivity import sensitivity
from netpress.prune.speed import CSRLinear, to_csr

BASE = ["--model", "lenet300", "--data", "synthetic", "--steps", "30it", "--json"]


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_prune_iterative(capsys, tmp_path):
    rc = main(["prune", *BASE, "--sparsity", "0.9", "--schedule", "iterative:2", "--retrain-steps", "10it",
               "--layer-sparsity", "fc_out.weight=0.5", "--out", str(tmp_path / "p.safetensors")])
    out = last_json(capsys)
    assert rc == 0 and len(out["rounds"]) == 2
    by = {r["layer"]: r for r in out["layers"]}
    assert by["fc_out"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    rest = [by["features.0"], by["features.2"]]  # ranked together (global scope) to 90%
    assert sum(r["nonzeros"] for r in rest) == round(0.1 * sum(r["params"] for r in rest))
    assert (tmp_path / "p.safetensors").exists()


def test_cli_prune_structured_and_from_run(capsys):
    assert main(["train", *BASE]) == 0
    run = last_json(capsys)["run"]
    rc = main(["prune", *BASE, "--from", run, "--sparsity", "0.5", "--structured"])
    out = last_json(capsys)
    assert rc == 0 and out["run"] == run and out["params"] < 64 * 300
    assert {g["producers"] for g in out["groups"]} == {"features.0", "features.2"}


@pytest.mark.parametrize("argv,msg", [
    (["--sparsity", "1.2"], "[0, 1)"), (["--sparsity", "0.5", "--score", "nope"], "unknown score"),
    (["--sparsity", "0.5", "--exclude", "nope.weight"], "nope.weight"),
    (["--sparsity", "0.5", "--layer-sparsity", "x"], "NAME=FRACTION"),
    (["--sparsity", "0.5", "--schedule", "iterative:x"], "iterative"),
])
def test_cli_bad_input_fails_before_training(capsys, argv, msg, tmp_path, monkeypatch):
    import netpress.cli.common as common
    monkeypatch.setattr(common, "trained_model", lambda a: pytest.fail("trained before validating"))
    assert main(["prune", *BASE, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_cli_sensitivity(capsys, tmp_path):
    rc = main(["sensitivity", *BASE, "--grid", "0,0.9", "--plot", str(tmp_path / "s.png")])
    out = last_json(capsys)
    assert rc == 0 and len(out["rows"]) == 2 * 3 and (tmp_path / "s.png").stat().st_size > 1000
    assert main(["sensitivity", *BASE, "--grid", "0,1"]) == 2


def test_accounting_counts():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    prune(net, 0.5, scope="local")
    rows, total = account(net, (1, 8, 8))
    conv, fc = rows
    assert conv["flops_dense"] == 4 * 9 * 36 and fc["flops_dense"] == 144 * 10
    assert conv["nonzeros"] == 18 and conv["flops_effective"] == 18 * 36 and fc["flops_effective"] == 720
    assert total["params"] == 36 + 4 + 1440 + 10 and total["nonzeros"] == 18 + 4 + 720 + 10
    assert total["flops_ratio"] == pytest.approx((4 * 9 * 36 + 1440) / (18 * 36 + 720))


def test_sensitivity_rows(synthetic):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))
    rows = sensitivity(net, synthetic, [0.0, 0.99])
    assert [(r["layer"], r["sparsity"]) for r in rows] == [("1.weight", 0.0), ("1.weight", 0.99), ("3.weight", 0.0), ("3.weight", 0.99)]
    assert rows[0]["accuracy"] == rows[2]["accuracy"]  # sparsity 0 = unpruned model
    assert not hasattr(net[1], "parametrizations")  # the model itself was not changed


def test_csr_swap_matches_dense():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))
    prune(net, 0.9, scope="local", names=["0.weight"])
    strip(net)
    fast = to_csr(net, min_sparsity=0.8)
    assert isinstance(fast[0], CSRLinear) and isinstance(fast[2], nn.Linear)
    x = torch.randn(5, 32)
    torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast(x[0]), net(x[0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast(x[:1]), net(x[:1]), atol=1e-5, rtol=1e-5)  # batch 1: the addmv path


def test_csr_without_bias_matches_dense_at_every_batch_shape():
    torch.manual_seed(1)
    layer = nn.Linear(32, 16, bias=False)
    with torch.no_grad():
        layer.weight[torch.rand_like(layer.weight) > 0.2] = 0
    fast = CSRLinear(layer)
    for x in (torch.randn(1, 32), torch.randn(3, 32), torch.randn(32), torch.randn(2, 3, 32)):
        torch.testing.assert_close(fast(x), layer(x), atol=1e-5, rtol=1e-5)
