"""The sweep report: table rows, a Pareto front equal to brute force, real PNGs, Markdown/HTML/JSON files."""
import json
import random

from netpress.cli.main import main
from netpress.sweep import InProcess, load_sweep, parse_spec, run_sweep
from netpress.sweep.report import pareto_front, write_sweep_report


def _brute_front(rows):
    """Points that no other point dominates (<= size and > accuracy, or < size and >= accuracy)."""
    keep = [r for r in rows if not any((o["size"] <= r["size"] and o["test_accuracy"] > r["test_accuracy"]) or
                                       (o["size"] < r["size"] and o["test_accuracy"] >= r["test_accuracy"]) for o in rows)]
    best = {}
    for r in keep:  # ties at the same size and accuracy: one representative
        best.setdefault((r["size"], r["test_accuracy"]), r)
    return sorted(best, key=lambda k: k[0])


def test_pareto_front_matches_brute_force():
    rng = random.Random(0)
    for _ in range(50):
        rows = [{"size": rng.randint(1, 20), "test_accuracy": rng.randint(0, 20) / 20} for _ in range(rng.randint(1, 30))]
        assert [(r["size"], r["test_accuracy"]) for r in pareto_front(rows)] == _brute_front(rows)


def test_report_files_have_the_trials_front_and_plots(tmp_path, capsys):
    spec = parse_spec({"kind": "train", "name": "tiny",
                       "base": {"data": {"name": "digits"}, "training": {"steps": "15it", "eval_every": "5it"}},
                       "params": {"training.lr": [0.05, 1e6], "model.init": ["kaiming_normal", "glorot_normal"]}})
    res = run_sweep(spec, root=tmp_path, executor=InProcess())
    sid, loaded, trials = load_sweep(res.id[:10], tmp_path)
    assert sid == res.id and loaded == spec and len(trials) == 4
    out = write_sweep_report(sid, loaded, trials, tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    for t in res.trials:
        assert f"| {t['index']} | {t['run_id']} |" in md
    assert md.count("| failed |") == 2 and "TrainingDiverged" in md
    done = [t for t in res.trials if t["status"] == "done"]
    assert {t["summary"]["bytes"] for t in done} == {4 * (64 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10)}
    front = out["front"]
    assert front == pareto_front(out["rows"]) and len(out["rows"]) == 2 and len(front) == 1
    assert front[0]["test_accuracy"] == max(t["summary"]["test_accuracy"] for t in done)
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.count("<tr>") == 1 + len(front) + 1 + 4 + 1 + 2 and "pareto.png" in html
    for p in ["pareto.png", "param_training_lr.png", "param_model_init.png"]:
        data = (tmp_path / "rep" / p).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert main(["sweep", "report", res.id, "--runs-dir", str(tmp_path), "--out", str(tmp_path / "cli"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["sweep"] == res.id and len(doc["failed"]) == 2 and doc["front"] == json.loads(json.dumps(front))
