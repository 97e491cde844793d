"""Lottery experiments and compression recipes as sweep members: the same runs the lottery / compress machinery
makes, recorded in the store, with report points per level / per file."""
import json

from netpress.lottery import run_lottery
from netpress.runs import Store
from netpress.sweep import InProcess, expand, parse_spec, run_sweep

TRAIN = {"optimizer": "adam", "lr": 1e-2, "batch_size": 50, "steps": "40it", "eval_every": "10it"}


def test_lottery_members_are_the_lottery_runs(tmp_path, synthetic, capsys):
    spec = parse_spec({"kind": "lottery", "batch_replicates": True,
                       "base": {"data": {"name": "synthetic"}, "training": TRAIN,
                                "lottery": {"levels": 2, "prune_fraction": 0.5, "controls": "reinit", "replicates": 2}},
                       "params": {"lottery.rewind": ["0it", "10it"]}})
    res = run_sweep(spec, root=tmp_path, executor=InProcess(report=True))
    assert [t["status"] for t in res.trials] == ["done", "done"], res.trials
    err = capsys.readouterr().err  # each trial reports its progress: start, every stage, end
    rid = res.trials[1]["run_id"]
    assert f"[trial 1 {rid}] started on " in err and f"[trial 1 {rid}] done in " in err
    assert f"[trial 1 {rid}] rep 1 level 2 reinit: test accuracy " in err
    t = expand(spec)[1]
    direct = run_lottery(t.model, t.data, t.training, t.lottery, root=tmp_path, data=synthetic, device="cpu")
    assert direct.id == res.trials[1]["run_id"] and (direct.path / "replicate_1" / "level_02" / "reinit").is_dir()
    levels = direct.summary["levels"]
    assert [p["size"] for p in res.trials[1]["points"]] == [lv["remaining"] for lv in levels]
    assert res.trials[1]["points"][-1]["test_accuracy"] == levels[-1]["branches"]["ticket"]["test_accuracy"]["mean"]
    assert {r["id"] for r in Store(tmp_path).list_runs("lottery", sweep=res.id)} == {x["run_id"] for x in res.trials}


def test_compress_members_write_netp_files_and_share_the_dense_run(tmp_path):
    recipe = {"stages": [{"prune": {"schedule": "oneshot", "sparsity": 0.5, "retrain": {"steps": "10it"}}},
                         {"encode": {"coder": "huffman"}}]}
    spec = parse_spec({"kind": "compress", "base": {"data": {"name": "digits"}, "training": {"steps": "30it"},
                                                   "recipe": recipe},
                       "params": {"recipe.stages.0.prune.sparsity": [0.5, 0.9]}})
    res = run_sweep(spec, root=tmp_path, executor=InProcess())
    assert [t["status"] for t in res.trials] == ["done", "done"], res.trials
    a, b = (t["summary"] for t in res.trials)
    assert a["run"] == b["run"] and len(Store(tmp_path).list_runs("train")) == 1  # one dense run for both
    assert a["sparsity"] < b["sparsity"] and b["bytes"] < a["bytes"]
    for t in res.trials:
        netp = tmp_path / t["run_id"] / "model.netp"
        assert netp.stat().st_size == t["summary"]["bytes"] == t["points"][0]["size"]
        assert json.loads((tmp_path / t["run_id"] / "result.json").read_text())["bytes"] == t["summary"]["bytes"]
    again = run_sweep(spec.replace(name="other"), root=tmp_path, executor=InProcess())  # another sweep, same runs
    assert [t["reused"] for t in again.trials] == [True, True]
