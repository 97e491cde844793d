"""The issue-15 seed flags on the command line: ``quantize --zero-shot`` / ``--quant-noise`` and ``lottery
--controls ...,scratch,finetuned`` / ``--early-bird``; bad values are one-line errors before any training."""
from __future__ import annotations

import json

import pytest

from netpress.cli.main import main

QUANT = ["quantize", "--model", "lenet300", "--data", "synthetic", "--steps", "1ep", "--json"]
LOTTERY = ["lottery", "--data", "synthetic", "--levels", "1", "--prune-fraction", "0.5", "--steps", "1ep",
           "--batch-size", "50", "--eval-every", "10it", "--device", "cpu", "--json"]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_quantize_ptq_zero_shot(tmp_path, capsys):
    assert main(QUANT + ["--runs-dir", str(tmp_path), "--method", "ptq", "--w", "8", "--a", "8", "--zero-shot"]) == 0
    out = _last_json(capsys)
    assert out["method"] == "ptq" and out["calibration"] == "zero-shot"
    assert out["accuracy_drop"] < 0.05 and out["ratio"] > 3.5


def test_quantize_qat_quant_noise(tmp_path, capsys):
    argv = QUANT + ["--runs-dir", str(tmp_path), "--method", "qat", "--w", "4", "--a", "0", "--quant-noise", "0.5",
                    "--finetune", "5it"]
    assert main(argv) == 0
    out = _last_json(capsys)
    assert out["method"] == "qat" and all(r["bits"] == 4 for r in out["layers"]) and out["ratio"] > 7


@pytest.mark.parametrize("extra,message", [
    (["--method", "uniform", "--zero-shot"], "zero-shot calibration is for method 'ptq'"),
    (["--method", "qat", "--quant-noise", "1.5"], "quant_noise must be in [0, 1]"),
    (["--method", "qat", "--quant-noise", "0.5", "--lsq"], "not with lsq"),
    (["--method", "ptq", "--quant-noise", "0.5"], "quant-noise is for method 'qat'"),
])
def test_quantize_bad_seed_flags_fail_before_training(tmp_path, capsys, extra, message):
    assert main(QUANT + ["--runs-dir", str(tmp_path)] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.glob("train_*"))


def test_lottery_scratch_control_and_early_bird(tmp_path, capsys):
    argv = LOTTERY + ["--runs-dir", str(tmp_path), "--controls", "scratch,finetuned", "--early-bird",
                      "--early-bird-every", "5it", "--early-bird-window", "2", "--early-bird-eps", "0.2"]
    assert main(argv) == 0
    out = _last_json(capsys)
    assert [(r["level"], r["branch"]) for r in out["levels"]] == [(0, "ticket"), (1, "ticket"), (1, "scratch"),
                                                                 (1, "finetuned")]
    (eb,) = out["early_bird"]
    assert eb["detected_iteration"] == 5 * (len(eb["distances"]) + 1) < 20
    assert eb["imp_iterations"] == 40 and eb["iterations"] == eb["detected_iteration"] + 20
    assert abs(eb["remaining"] - out["levels"][1]["remaining"]) < 0.01


def test_lottery_prints_the_early_bird_table(tmp_path, capsys):
    argv = [a for a in LOTTERY if a != "--json"] + ["--runs-dir", str(tmp_path), "--controls", "", "--early-bird",
                                                    "--early-bird-every", "5it", "--early-bird-window", "2"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "early-bird ticket vs IMP ticket" in text and "rep 0 mask distances: " in text


@pytest.mark.parametrize("extra,message", [
    (["--early-bird", "--early-bird-eps", "0"], "early_bird_eps must be in (0, 1]"),
    (["--early-bird", "--early-bird-every", "0it"], "early_bird_every must be a length > 0"),
    (["--early-bird", "--early-bird-window", "0"], "early_bird_window must be"),
    (["--controls", "reinit,scrach"], "unknown control(s) ['scrach']"),
])
def test_lottery_bad_seed_flags_fail_before_training(tmp_path, capsys, extra, message):
    assert main(LOTTERY + ["--runs-dir", str(tmp_path)] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.glob("lottery_*"))


def test_prune_scratch_control(tmp_path, capsys):
    argv = ["prune", "--data", "synthetic", "--steps", "1ep", "--sparsity", "0.8", "--control", "scratch",
            "--runs-dir", str(tmp_path), "--device", "cpu", "--json"]
    assert main(argv) == 0
    out = _last_json(capsys)
    assert 0 <= out["scratch_test_accuracy"] <= 1 and out["scratch_steps"] == "1ep"  # the dense run's schedule
    assert abs(out["sparsity"] - 0.8) < 0.01


def test_prune_bad_control_fails_before_training(tmp_path, capsys):
    argv = ["prune", "--data", "synthetic", "--sparsity", "0.8", "--control", "scrach", "--runs-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown --control 'scrach'" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.glob("train_*"))
