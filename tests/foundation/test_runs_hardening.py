"""Runs that fail, resume, or meet corrupt files."""
from __future__ import annotations

import json

import pytest
import torch

import netpress.runs.training as training
from netpress.cli.main import main
from netpress.data import DataHparams
from netpress.errors import RunError
from netpress.models import ModelHparams
from netpress.runs import Store, load_trained_run, train_run
from netpress.train import TrainingHparams
from netpress.train.trainer import TrainingDiverged

TINY = TrainingHparams(steps="2ep", batch_size=100)
MODEL, DATA = ModelHparams("lenet300"), DataHparams("synthetic")


def test_diverged_training_leaves_nothing_a_later_run_would_trust(tmp_path):
    bad = TINY.replace(lr=1e12)
    with pytest.raises(TrainingDiverged):
        train_run(MODEL, DATA, bad, root=tmp_path)
    (folder,) = tmp_path.glob("train_*")
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # no hparams, init, checkpoint or result
    (row,) = Store(tmp_path).list_runs()
    assert row["status"] == "failed"
    with pytest.raises(RunError, match="not finished|no run"):
        load_trained_run(folder.name, tmp_path)
    with pytest.raises(RunError, match="no run"):
        load_trained_run(str(folder), tmp_path)


def test_failed_training_command_is_one_error_line(capsys):
    assert main(["train", "--data", "synthetic", "--lr", "1e12", "--steps", "1ep"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "netpress: error:" in err[0] and "loss is" in err[0]


def test_resume_uses_the_thread_count_the_run_started_with(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    reference = train_run(MODEL, DATA, TINY, root=tmp_path / "a")
    assert json.loads((reference.path / "hparams.json").read_text())["torch_threads"] == 1
    assert reference.summary["torch_threads"] == 1

    real_train, seen = training.train, []

    def interrupted(*a, **kw):
        raise KeyboardInterrupt  # killed right after the run folder was set up with 1 thread

    monkeypatch.setattr(training, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_run(MODEL, DATA, TINY, root=tmp_path / "b")

    def spy(*a, **kw):
        seen.append(torch.get_num_threads())
        return real_train(*a, **kw)

    monkeypatch.setattr(training, "train", spy)
    torch.set_num_threads(2)
    resumed = train_run(MODEL, DATA, TINY, root=tmp_path / "b")
    assert seen == [1] and torch.get_num_threads() == 2  # trained with the recorded count, restored after
    assert resumed.summary["torch_threads"] == 1
    for k, v in reference.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_fresh_run_records_the_current_thread_count(tmp_path):
    torch.set_num_threads(2)
    run = train_run(MODEL, DATA, TINY.replace(steps="1ep"), root=tmp_path)
    assert json.loads((run.path / "hparams.json").read_text())["torch_threads"] == 2


def test_corrupt_database_and_runs_root_are_run_errors(tmp_path):
    (tmp_path / "netpress.db").write_bytes(b"garbage" * 200)
    with pytest.raises(RunError, match="runs database .* is unusable"):
        Store(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(RunError, match="is not a folder"):
        Store(tmp_path / "file")
    with pytest.raises(RunError, match="cannot create the runs folder"):
        Store(tmp_path / "file" / "below")


def test_database_with_malformed_rows_is_a_run_error(tmp_path):
    store = Store(tmp_path)
    store.upsert_run("train_x", "train", tmp_path, {"a": 1}, "done")
    import sqlite3

    with sqlite3.connect(tmp_path / "netpress.db") as db:
        db.execute("UPDATE runs SET hparams='{broken'")
    with pytest.raises(RunError, match="malformed rows"):
        store.list_runs()


def test_unavailable_device_fails_before_any_folder(tmp_path):
    from netpress.errors import ConfigError

    with pytest.raises(ConfigError, match="not available"):
        train_run(MODEL, DATA, TINY, root=tmp_path / "runs", device="cuda:7")
    assert not (tmp_path / "runs").exists()
