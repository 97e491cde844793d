"""Sweeps: expansion and hashing, validation before work, resume after a kill, failure isolation, CLI, filters."""
import itertools
import json

import pytest

from netpress.cli.main import main
from netpress.data import DataHparams
from netpress.errors import ConfigError
from netpress.lottery import experiment_id
from netpress.models import ModelHparams
from netpress.runs import Store, run_id
from netpress.sweep import InProcess, expand, parse_spec, run_sweep, sweep_id
from netpress.train import TrainingHparams

BASE = {"data": {"name": "digits"}, "training": {"steps": "20it", "eval_every": "5it", "batch_size": 64}}


def spec(**kw):
    return parse_spec({"kind": "train", "base": BASE, **kw})


def test_grid_expands_to_the_product_with_the_underlying_run_ids():
    s = spec(params={"training.lr": [0.1, 0.01], "model.init": ["kaiming_normal", "glorot_normal"]}, seeds=[0, 1, 2])
    trials = expand(s)
    assert len(trials) == 2 * 2 * 3
    combos = [(t.params["training.lr"], t.params["model.init"], t.params["training.seed"]) for t in trials]
    assert combos == list(itertools.product([0.1, 0.01], ["kaiming_normal", "glorot_normal"], [0, 1, 2]))
    t = trials[4]
    expected = run_id("train", ModelHparams(init=t.params["model.init"]), DataHparams("digits"),
                      TrainingHparams(**BASE["training"], lr=t.params["training.lr"], seed=t.params["training.seed"]))
    assert t.run_id == expected  # the same id `netpress train` gives these settings
    assert [x.run_id for x in expand(s)] == [x.run_id for x in trials]
    assert len({x.run_id for x in trials}) == len(trials)
    assert sweep_id(s) == sweep_id(spec(params=dict(s.params))) != sweep_id(spec(params={"training.lr": [0.1]}))


def test_random_search_is_seeded_in_range_and_deduplicated():
    s = spec(search="random", samples=12, seed=3,
             params={"training.lr": {"log_uniform": [1e-3, 1e-1]}, "training.batch_size": {"int": [16, 64]},
                     "model.init": ["kaiming_normal", "glorot_normal"]})
    a, b = expand(s), expand(s)
    assert [t.params for t in a] == [t.params for t in b]
    assert all(1e-3 <= t.params["training.lr"] <= 1e-1 and 16 <= t.params["training.batch_size"] <= 64 for t in a)
    assert [t.params for t in expand(s.replace(seed=4))] != [t.params for t in a]
    few = expand(spec(search="random", samples=20, params={"training.seed": [0, 1]}))
    assert sorted(t.params["training.seed"] for t in few) == [0, 1]  # coinciding draws are one trial


def test_lottery_and_compress_trials_map_onto_their_runs():
    lt = expand(parse_spec({"kind": "lottery", "base": {"data": {"name": "digits"}, "lottery": {"levels": 2}},
                            "params": {"lottery.rewind": ["0it", "lr"]}}))
    assert lt[0].training.optimizer == "adam"  # Frankle & Carbin's defaults unless overridden
    assert lt[1].run_id == experiment_id(lt[1].model, lt[1].data, lt[1].training, lt[1].lottery)
    assert lt[1].lottery.rewind == "lr"
    ct = expand(parse_spec({"kind": "compress", "base": {"data": {"name": "digits"}, "recipe": "prune-only"},
                            "params": {"recipe.stages.0.prune.rounds": [1, 2]}}))
    assert [t.recipe_obj().stages[0].hparams.rounds for t in ct] == [1, 2]
    assert ct[0].run_id != ct[1].run_id and ct[0].dense_run_id == ct[1].dense_run_id


@pytest.mark.parametrize("doc, match", [
    ({"kind": "train", "bogus": 1}, "bogus: unknown key"),
    ({"kind": "nope"}, "kind: unknown 'nope'"),
    ({"kind": "train", "base": {"lottery": {}}}, "base.lottery: unknown section"),
    ({"kind": "train", "params": {"training.lr": 0.1}}, "params.training.lr: must be a list"),
    ({"kind": "train", "params": {"trainin.lr": [0.1]}}, "params.trainin.lr: must be 'section.field'"),
    ({"kind": "train", "search": "random", "params": {"training.lr": [0.1]}}, "samples: must be an integer"),
    ({"kind": "train", "search": "random", "samples": 2, "params": {"training.lr": {"log_uniform": [0, 1]}}},
     "log_uniform: bounds must be > 0"),
])
def test_bad_specs_are_one_line_config_errors(doc, match):
    with pytest.raises(ConfigError, match=match) as info:
        expand(parse_spec(doc))
    assert "\n" not in str(info.value)


def test_bad_values_fail_before_any_work(tmp_path):
    s = spec(params={"training.lr": [0.1, -1.0], "training.stepz": [1]})
    with pytest.raises(ConfigError, match="stepz"):
        run_sweep(s, root=tmp_path, executor=InProcess())
    with pytest.raises(ConfigError, match="params training.lr -> training: lr must be > 0"):
        run_sweep(spec(params={"training.lr": [0.1, -1.0]}), root=tmp_path, executor=InProcess())
    with pytest.raises(ConfigError, match=r"recipe.stages\[0\].prune.sparsity"):
        expand(parse_spec({"kind": "compress", "base": {"recipe": "prune-only"},
                           "params": {"recipe.stages.0.prune.sparsity": [0.5, 2.0]}}))
    assert not list(tmp_path.iterdir())  # nothing written, nothing trained


def test_failing_trial_is_recorded_and_the_others_finish(tmp_path):
    s = spec(params={"training.lr": [0.05, 1e6, 0.02]})
    res = run_sweep(s, root=tmp_path, executor=InProcess())
    assert [t["status"] for t in res.trials] == ["done", "failed", "done"]
    assert "TrainingDiverged" in res.trials[1]["error"] and "\n" not in res.trials[1]["error"]
    store = Store(tmp_path)
    failed = store.list_runs(status="failed", sweep=res.id)
    assert [r["id"] for r in failed] == [res.trials[1]["run_id"]] and "loss is nan" in failed[0]["summary"]["error"]
    assert {r["id"] for r in store.list_runs(status="done", sweep=res.id)} == {res.trials[0]["run_id"], res.trials[2]["run_id"]}
    assert store.list_runs("sweep")[0]["status"] == "failed"
    again = run_sweep(s, root=tmp_path, executor=InProcess())  # failed trials are retried, done ones skipped
    assert [t.get("skipped") for t in again.trials] == [True, False, True]


class _Killed(KeyboardInterrupt):
    pass


def test_rerun_after_a_kill_skips_finished_trials_and_resumes_the_killed_one(tmp_path, monkeypatch):
    import netpress.runs.training as training
    import netpress.sweep.executors as executors

    s = spec(params={"training.seed": [0, 1, 2]})
    reference = run_sweep(s, root=tmp_path / "ref", executor=InProcess())
    real_train, calls = training.train, []

    def killing_train(*args, **kw):  # the second trial dies at iteration 12 (its checkpoint is at 10)
        if len(calls) == 1:
            kw["callbacks"] = [_KillAt(12)]
        calls.append(1)
        return real_train(*args, **kw)

    monkeypatch.setattr(training, "train", killing_train)
    with pytest.raises(_Killed):
        run_sweep(s, root=tmp_path / "runs", executor=InProcess())
    monkeypatch.setattr(training, "train", real_train)
    ran = []
    real_run_trial = executors.run_trial
    monkeypatch.setattr(executors, "run_trial", lambda t, *a, **k: ran.append(t["index"]) or real_run_trial(t, *a, **k))
    res = run_sweep(s, root=tmp_path / "runs", executor=InProcess())
    assert ran == [1, 2]  # trial 0 finished before the kill: not dispatched again
    assert [t["skipped"] for t in res.trials] == [True, False, False]
    assert res.trials[1]["summary"]["resumed_from"] == 10
    for got, want in zip(res.trials, reference.trials):  # a resumed sweep ends where an uninterrupted one does
        assert got["summary"]["test_accuracy"] == want["summary"]["test_accuracy"]
        assert got["run_id"] == want["run_id"]


class _KillAt:
    def __init__(self, at):
        self.at = at

    def on_step_end(self, iteration, model, optimizer):
        if iteration == self.at:
            raise _Killed()


def test_cli_sweep_json_runs_filter_and_bad_spec(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("kind: train\nbase:\n  data: {name: digits}\n  training: {steps: 10it, eval_every: 5it}\n"
                    "params:\n  training.lr: [0.05, 0.1]\n")
    assert main(["sweep", str(path), "--workers", "1", "--runs-dir", str(tmp_path / "r"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["done"] == 2 and out["failed"] == 0 and [t["training.lr"] for t in out["trials"]] == [0.05, 0.1]
    assert main(["runs", "list", "--runs-dir", str(tmp_path / "r"), "--sweep", out["sweep"],
                 "--where", "training.lr=0.1", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"]
    assert [r["id"] for r in listed] == [out["trials"][1]["run_id"]]
    path.write_text(path.read_text().replace("[0.05, 0.1]", "[0.05, 1.0e+6]"))  # the second trial diverges
    assert main(["sweep", str(path), "--workers", "1", "--runs-dir", str(tmp_path / "r"), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["failed"] == 1
    assert captured.err.strip().splitlines()[-1].startswith("netpress: 1 of 2 trials failed")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: train\nparams:\n  training.lr: 0.1\n")
    assert main(["sweep", str(bad), "--runs-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "netpress: error: params.training.lr: must be a list of values"
