"""Running one trial (in any process): the existing idempotent run machinery, errors caught and returned.

A worker returns a plain, picklable result dict; the driver writes it to the store, so the same code serves the
local process pool and Ray workers on other machines.
"""
from __future__ import annotations

import functools
import json
import socket
import sys
import time
import traceback
from pathlib import Path

import torch

from netpress.data import DataHparams, DataSplits, load_data
from netpress.fileio import atomic_write_text
from netpress.runs import run_lock
from netpress.sweep.trials import Trial

DONE = "result.json"


@functools.lru_cache(maxsize=4)
def _data(data_hp: DataHparams, data_dir: str | None) -> DataSplits:
    return load_data(data_hp, data_dir)  # one load per worker process and dataset


def run_trial(trial: dict, root: str, data_dir: str | None = None, device: str = "cpu", threads: int = 0,
              report: bool = False) -> dict:
    """Run (or reuse, or resume) one trial; never raises for a failing trial.

    Args:
        trial: :meth:`Trial.to_dict` (plain data, so it crosses process and machine boundaries).
        root: the runs folder.
        data_dir: where the data files are.
        device: ``cpu``, ``cuda`` or ``auto``.
        threads: intra-op threads for this worker (0 leaves torch's setting).
        report: print progress lines to stderr (start, lottery stages, end; Ray forwards them to the driver).

    Returns:
        ``{index, run_id, status ('done' | 'failed'), reused, seconds, summary, points, error}``; ``points`` are
        (size, accuracy) pairs for the report.

    Example:
        >>> run_trial(trial.to_dict(), "netpress_runs")["status"]
        'done'
    """
    if threads:
        torch.set_num_threads(threads)
    t = Trial.from_dict(trial)
    start = time.perf_counter()
    out = {"index": t.index, "run_id": t.run_id, "params": t.params, "reused": False, "summary": None,
           "points": [], "error": None}
    say = _reporter(t, report)
    say(f"started on {socket.gethostname()}")
    try:
        data = _data(t.data, data_dir)
        summary, points, reused = RUNNERS[t.kind](t, Path(root), data, data_dir, device, say)
        out.update(status="done", summary=summary, points=points, reused=reused)
    except Exception as exc:  # a failing trial is recorded and the others go on
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0],
                   traceback=traceback.format_exc(limit=8))
    out["seconds"] = time.perf_counter() - start
    say(f"{out['status']} in {out['seconds']:.1f} s" + (f": {out['error']}" if out["error"] else ""))
    return out


def _reporter(t: Trial, report: bool):
    def say(text: str) -> None:
        if report:
            print(f"[trial {t.index} {t.run_id}] {text}", file=sys.stderr, flush=True)

    return say


def _parameter_bytes(model) -> int:
    return 4 * sum(p.numel() for p in model.parameters())


def _train(t: Trial, root: Path, data, data_dir, device, say):
    from netpress.runs import train_run

    run = train_run(t.model, t.data, t.training, root=root, data=data, device=device, progress=False)
    size = _parameter_bytes(run.model)
    summary = {**run.summary, "bytes": size}
    return summary, [{"size": size, "test_accuracy": summary["test_accuracy"]}], run.reused


def _compress(t: Trial, root: Path, data, data_dir, device, say):
    from netpress.pipeline import compress
    from netpress.runs import train_run

    folder = root / t.run_id
    if (folder / DONE).exists():
        summary = json.loads((folder / DONE).read_text())
        return summary, _compress_points(summary), True
    dense = train_run(t.model, t.data, t.training, root=root, data=data, device=device, progress=False)
    with run_lock(folder):
        result = compress(dense.model, dense.data, recipe=t.recipe_obj(), train_hp=t.training,
                          out=folder / "model.netp", workdir=folder, device=device, progress=False)
        summary = {**result.summary(), "run": dense.id, "stages": result.rows}
        atomic_write_text(folder / DONE, json.dumps(summary, indent=2, default=float) + "\n")  # done-marker last
    return summary, _compress_points(summary), False


def _compress_points(summary: dict) -> list[dict]:
    return [{"size": summary["bytes"], "test_accuracy": summary["test_accuracy"]}]


def _lottery(t: Trial, root: Path, data, data_dir, device, say):
    from netpress.lottery import run_lottery

    folder = root / t.run_id
    reused = (folder / "results.json").exists()
    res = run_lottery(t.model, t.data, t.training, t.lottery, root=root, data=data, device=device, progress=False,
                      batch_replicates=t.batch_replicates,
                      on_stage=lambda r: say(f"rep {r['replicate']} level {r['level']} {r['branch']}: "
                                             f"test accuracy {r['test_accuracy']:.4f}"))
    points = [{"size": lv["remaining"], "test_accuracy": lv["branches"]["ticket"]["test_accuracy"]["mean"],
               "level": lv["level"]} for lv in res.summary["levels"]]
    short = {"levels": len(points) - 1, "remaining": points[-1]["size"], "test_accuracy": points[-1]["test_accuracy"],
             "dense_test_accuracy": points[0]["test_accuracy"]}
    return short, points, reused


RUNNERS = {"train": _train, "compress": _compress, "lottery": _lottery}
