"""The ``distill`` and ``lowrank`` commands end to end on the small digits data."""
import json

import pytest

from netpress.cli.main import main


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    common = ["--data", "digits", "--steps", "2ep", "--runs-dir", str(root), "--device", "cpu", "--json"]
    assert main(["train", "--model", "lenet300", *common]) == 0
    return root


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_distill_command(teacher, capsys, tmp_path):
    capsys.readouterr()
    rc = main(["distill", "--teacher", "train_", "--student", "lenet300", "--data", "digits", "--temperature", "4",
               "--alpha", "0.1", "--steps", "2ep", "--runs-dir", str(teacher), "--device", "cpu",
               "--out", str(tmp_path / "student"), "--json"])
    assert rc == 0
    out = _last_json(capsys)
    assert out["temperature"] == 4.0 and out["alpha"] == 0.1 and out["mode"] == "kd"
    assert out["test_accuracy"] > 0.8 and out["teacher_test_accuracy"] > 0.8
    assert (tmp_path / "student" / "model.pt").exists()
    # the saved student is a run folder the lowrank command can start from
    rc = main(["lowrank", "--from", str(tmp_path / "student"), "--data", "digits", "--ratio", "2",
               "--runs-dir", str(teacher), "--device", "cpu", "--json"])
    assert rc == 0 and _last_json(capsys)["layer_ratio"] >= 1.9


def test_lowrank_command(teacher, capsys, tmp_path):
    capsys.readouterr()
    rc = main(["lowrank", "--model", "lenet300", "--data", "digits", "--steps", "2ep", "--energy", "0.9",
               "--finetune", "1ep", "--spectrum", str(tmp_path / "s.png"), "--runs-dir", str(teacher),
               "--device", "cpu", "--json"])
    assert rc == 0
    out = _last_json(capsys)
    assert set(out["ranks"]) <= {"features.0", "features.2", "fc_out"}
    assert out["params_after"] <= out["params_before"]
    assert {"dense_test_accuracy", "factorized_test_accuracy", "test_accuracy", "finetune"} <= set(out)
    assert (tmp_path / "s.png").exists()


@pytest.mark.parametrize("argv,match", [
    (["distill", "--teacher", "x", "--temperature", "0"], "temperature"),
    (["distill", "--teacher", "x", "--alpha", "1.5"], "alpha"),
    (["lowrank", "--energy", "1.2"], "energy"),
    (["lowrank", "--rank", "101", "--layers", "fc_out"], "rank 101"),
])
def test_bad_input_exits_2_with_message(teacher, capsys, argv, match):
    capsys.readouterr()
    rc = main([*argv, "--data", "digits", "--steps", "2ep", "--runs-dir", str(teacher), "--device", "cpu"])
    assert rc == 2
    assert match in capsys.readouterr().err


def test_student_with_other_class_count_is_rejected(teacher, capsys):
    capsys.readouterr()
    rc = main(["distill", "--teacher", "train_", "--data", "synthetic", "--steps", "1ep", "--runs-dir", str(teacher),
               "--device", "cpu"])
    assert rc == 2
    assert "outputs" in capsys.readouterr().err
