"""``netpress sweep SPEC.yaml``: run a grid or random sweep (local process pool, or Ray with ``--ray``);
``netpress sweep report SWEEP``: its Markdown/HTML report with a Pareto plot.

Example:
    netpress sweep sweep.yaml --json
    netpress sweep sweep.yaml --ray auto
    netpress sweep report sweep.yaml --out sweep_report
"""
from __future__ import annotations

import sys
from pathlib import Path

from netpress.cli import common
from netpress.errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a sweep of trials (grid/random; local pool or Ray); 'sweep report SWEEP'",
                       description="Run every unfinished trial of a sweep spec (finished ones are skipped, killed "
                                   "ones resume). `netpress sweep report SWEEP` (id, prefix or spec file) writes "
                                   "its report.")
    p.add_argument("target", nargs="+", metavar="SPEC.yaml | report SWEEP", help="a spec file, or 'report SWEEP'")
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                   help="run on Ray: 'auto' (the running cluster, else a local instance) or a cluster address")
    p.add_argument("--workers", type=int, default=0, help="local processes (default: one per core; 1: in this process)")
    p.add_argument("--out", default=None, help="report folder (default: <runs-dir>/<sweep id>/report)")
    p.add_argument("--data-dir", default=None, help="folder with the data files (else $NETPRESS_DATA)")
    common.add_run_options(p)
    common.add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.target[0] == "report":
        if len(args.target) != 2:
            raise ConfigError("usage: netpress sweep report SWEEP (a sweep id, id prefix or spec file)")
        return report(args, args.target[1])
    if len(args.target) != 1:
        raise ConfigError(f"unexpected arguments {' '.join(args.target[1:])!r}; give one spec file")
    return sweep(args, args.target[0])


def sweep(args, spec_path: str) -> int:
    from netpress.sweep import expand, load_spec, make_executor, run_sweep

    spec = load_spec(spec_path)
    n = len(expand(spec))  # validated before any work
    executor = make_executor(args.ray, args.workers, report=True)  # trials report progress on stderr
    print(f"sweep {spec.name}: {n} {spec.kind} trials on {executor.name}", file=sys.stderr)
    result = run_sweep(spec, root=args.runs_dir, executor=executor, data_dir=args.data_dir, device=args.device,
                       on_result=lambda r: print(_line(r, n), file=sys.stderr))
    rows = [{"trial": t["index"], "run_id": t["run_id"], **t["params"], "status": t["status"],
             "test_accuracy": (t["summary"] or {}).get("test_accuracy"), "error": t["error"]} for t in result.trials]
    human = common.table(rows) + f"\nnext: netpress sweep report {result.id}    netpress runs list --sweep {result.id}"
    common.emit({**result.summary(), "trials": rows}, args.json, human)
    failed = sum(r["status"] == "failed" for r in rows)
    if failed:  # the sweep ran, but not every trial: a script must see it
        print(f"netpress: {failed} of {n} trials failed (rerun the same command to retry them)", file=sys.stderr)
    return 1 if failed else 0


def _line(r: dict, n: int) -> str:
    what = "skipped (done)" if r.get("skipped") else r["status"]
    acc = (r.get("summary") or {}).get("test_accuracy")
    tail = f"test accuracy {acc:.4f}" if acc is not None else (r.get("error") or "")
    return f"  trial {r['index'] + 1}/{n} {r['run_id']} {what}: {tail}"


def report(args, ref: str) -> int:
    from netpress.runs import runs_root
    from netpress.sweep import load_sweep
    from netpress.sweep.report import write_sweep_report

    sid, spec, trials = load_sweep(ref, args.runs_dir)
    if not trials:
        raise ConfigError(f"sweep {sid} has no recorded trials yet; run `netpress sweep SPEC.yaml` first")
    out = Path(args.out) if args.out else runs_root(args.runs_dir) / sid / "report"
    res = write_sweep_report(sid, spec, trials, out)
    human = f"wrote {res['markdown']} and {res['html']} ({len(res['plots'])} plots)"
    common.emit({"sweep": sid, "markdown": res["markdown"], "html": res["html"], "plots": res["plots"],
                 "front": res["front"], "failed": res["failed"], "points": res["rows"]}, args.json, human)
    return 0
