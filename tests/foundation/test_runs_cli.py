import json

import pytest

from netpress.cli.main import main
from netpress.data import DataHparams
from netpress.errors import NetpressError
from netpress.models import ModelHparams
from netpress.runs import Store, resolve_run, runs_root, train_run
from netpress.train import TrainingHparams

TINY = TrainingHparams(steps="2ep", batch_size=100)


def test_train_run_is_content_addressed_and_idempotent(tmp_path):
    run = train_run(ModelHparams("lenet300"), DataHparams("synthetic"), TINY, root=tmp_path)
    assert not run.reused and run.id.startswith("train_")
    doc = json.loads((run.path / "hparams.json").read_text())
    assert doc["non_default"]["training"] == {"steps": "2ep", "batch_size": 100}
    assert doc["training"]["lr"] == TINY.lr
    again = train_run(ModelHparams("lenet300"), DataHparams("synthetic"), TINY, root=tmp_path)
    assert again.reused and again.id == run.id and again.summary == run.summary
    other = train_run(ModelHparams("lenet300"), DataHparams("synthetic"), TINY.replace(seed=1), root=tmp_path)
    assert other.id != run.id
    store = Store(tmp_path)
    assert {r["id"] for r in store.list_runs()} == {run.id, other.id}
    acc = store.metrics(run.id, "test_accuracy")
    assert [it for it, _ in acc] == [10, 20] and acc[-1][1] == run.summary["test_accuracy"]
    assert resolve_run(run.id.split("_")[1][:6], tmp_path) == run.path
    with pytest.raises(NetpressError, match="no run"):
        resolve_run("zzzz", tmp_path)


def test_cli_train_json_last_line(capsys):
    code = main(["train", "--model", "lenet300", "--data", "synthetic", "--steps", "2ep", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    result = json.loads(out[-1])
    assert result["reused"] is False and 0.8 < result["test_accuracy"] <= 1.0
    assert result["early_stop_iteration"] > 0
    main(["train", "--model", "lenet300", "--data", "synthetic", "--steps", "2ep", "--json"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["reused"] is True
    main(["runs", "list", "--json"])
    runs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"]
    assert len(runs) == 1 and runs[0]["status"] == "done"
    assert runs_root().exists()


@pytest.mark.parametrize("argv,match", [
    (["--model", "resnet9000"], "unknown model 'resnet9000'; known: conv2"),
    (["--data", "imagenet"], "unknown dataset 'imagenet'; known: digits"),
    (["--steps", "0ep"], "longer than zero"),
    (["--lr", "-1"], "lr must be > 0"),
    (["--batch-size", "0"], "batch_size must be > 0"),
])
def test_cli_bad_input_is_one_clear_error(argv, match, capsys):
    code = main(["train", "--data", "synthetic", *argv] if "--data" not in argv else ["train", *argv])
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err
    assert not list(runs_root().glob("train_*"))  # rejected before any work
