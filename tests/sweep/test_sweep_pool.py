"""The local process pool: trials in worker processes; a worker that dies is one failed trial, not a dead sweep."""
import os

import netpress.sweep.executors as executors
from netpress.runs import Store
from netpress.sweep import InProcess, LocalPool, parse_spec, run_sweep
from netpress.sweep.runner import run_trial

SPEC = parse_spec({"kind": "train", "base": {"data": {"name": "digits"}, "training": {"steps": "10it", "eval_every": "5it"}},
                   "params": {"training.lr": [0.05, 0.02, 0.01]}})


def dying_run_trial(trial, *args):
    """Runs in the worker: the second trial's process dies without a word (as on a crash or the OOM killer)."""
    if trial["index"] == 1:
        os._exit(3)
    return run_trial(trial, *args)


def test_a_dead_worker_is_a_failed_trial(tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "run_trial", dying_run_trial)
    res = run_sweep(SPEC, root=tmp_path, executor=LocalPool(1))
    status = {t["index"]: t["status"] for t in res.trials}
    assert status[1] == "failed" and "worker died" in res.trials[1]["error"]
    assert res.trials[1]["run_id"] in {r["id"] for r in Store(tmp_path).list_runs("train", status="failed")}
    assert status[0] == "done"  # finished before the crash (a broken pool may also fail the trials still queued)
    monkeypatch.setattr(executors, "run_trial", run_trial)
    again = run_sweep(SPEC, root=tmp_path, executor=InProcess())  # a re-run retries what did not finish
    assert [t["status"] for t in again.trials] == ["done"] * 3
    assert [t["skipped"] for t in again.trials][1] is False
