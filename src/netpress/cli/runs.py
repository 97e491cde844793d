"""``netpress runs list``: the stored runs."""
from __future__ import annotations

from netpress.cli import common


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list stored runs")
    rsub = p.add_subparsers(dest="runs_cmd", required=True)
    lp = rsub.add_parser("list", help="list runs")
    lp.add_argument("--kind", default=None, help="only runs of this kind (train, lottery, ...)")
    lp.add_argument("--status", default=None, help="only runs with this status (running, done, failed)")
    lp.add_argument("--sweep", default=None, help="only the trials of this sweep id")
    lp.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                    help="only runs whose hparams (or summary) KEY equals VALUE, e.g. training.lr=0.1 (repeatable)")
    lp.add_argument("--runs-dir", default=None)
    common.add_json(lp)
    lp.set_defaults(func=list_runs)


def list_runs(args) -> int:
    from netpress.runs import Store, runs_root

    from netpress.errors import ConfigError

    bad = [w for w in args.where if "=" not in w]
    if bad:
        raise ConfigError(f"--where {bad[0]!r}: use KEY=VALUE, e.g. training.lr=0.1")
    where = dict(w.split("=", 1) for w in args.where)
    runs = Store(runs_root(args.runs_dir)).list_runs(args.kind, status=args.status, sweep=args.sweep, where=where)
    rows = [{"id": r["id"], "kind": r["kind"], "status": r["status"],
             "test_accuracy": (r["summary"] or {}).get("test_accuracy"), "path": r["path"]} for r in runs]
    common.emit({"runs": rows}, args.json, common.table(rows, ["id", "kind", "status", "test_accuracy", "path"]))
    return 0
