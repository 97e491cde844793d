"""The report (PNGs, Markdown, paper checks) and the ``netpress lottery`` command on a tiny experiment."""
import json

from netpress.cli.main import main
from netpress.lottery import run_lottery
from netpress.report.lottery import checks, write_report

from lottery_helpers import DATA, MODEL, TRAIN, tiny


def test_report_writes_figures_and_tables(tmp_path, data):
    hp = tiny(levels=2, controls="reinit", control_levels="2", lmc_levels="0", replicates=2)
    res = run_lottery(MODEL, DATA, TRAIN, hp, root=tmp_path / "runs", data=data, device="cpu")
    assert [(r["level"], r["branch"]) for r in res.rows if r["replicate"] == 0] == [
        (0, "ticket"), (1, "ticket"), (2, "ticket"), (2, "reinit")]
    out = write_report(res.summary, tmp_path / "report", title="tiny")
    names = sorted(p.name for p in out["figures"])
    assert names == ["lottery_accuracy.png", "lottery_early_stop.png", "lottery_final_accuracy.png", "lottery_lmc.png"]
    for p in out["figures"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = out["markdown"]
    assert md.startswith("# tiny") and "| 2 | 25." in md and "± " in md and "lottery_lmc.png" in md
    verdict = {c["check"].split(" ")[0]: c for c in checks(res.summary)}
    assert set(verdict) == {"tickets", "ticket", "LMC"} and all(isinstance(c["met"], bool) for c in verdict.values())


def test_cli_runs_an_experiment_and_reports_it(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    argv = ["lottery", "--data", "synthetic", "--levels", "1", "--prune-fraction", "0.5", "--steps", "1ep",
            "--batch-size", "50", "--eval-every", "10it", "--controls", "reinit", "--runs-dir", runs,
            "--device", "cpu", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["run"].startswith("lottery_")
    assert [(r["level"], r["branch"]) for r in out["levels"]] == [(0, "ticket"), (1, "ticket"), (1, "reinit")]
    assert abs(out["levels"][1]["remaining"] - 0.5) < 0.01
    hparams = json.loads((tmp_path / "runs" / out["run"] / "hparams.json").read_text())
    assert hparams["training"]["optimizer"] == "adam" and hparams["training"]["batch_size"] == 50

    assert main(["lottery", "report", out["run"], "--runs-dir", runs, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["report"].endswith("report.md") and len(rep["figures"]) == 4
    assert rep["levels"] == out["levels"]


def test_cli_rejects_bad_options(tmp_path, capsys):
    assert main(["lottery", "--levels", "0", "--data", "synthetic", "--runs-dir", str(tmp_path)]) == 2
    assert "levels must be" in capsys.readouterr().err
    assert main(["lottery", "--rewind", "later", "--data", "synthetic", "--runs-dir", str(tmp_path)]) == 2
    assert "unknown rewind" in capsys.readouterr().err
    assert main(["lottery", "bogus", "--data", "synthetic", "--runs-dir", str(tmp_path)]) == 2
