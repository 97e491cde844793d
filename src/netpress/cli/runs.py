"""``netpress runs list``: the stored runs."""
from __future__ import annotations

from netpress.cli import common


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list stored runs")
    rsub = p.add_subparsers(dest="runs_cmd", required=True)
    lp = rsub.add_parser("list", help="list runs")
    lp.add_argument("--kind", default=None, help="only runs of this kind (train, lottery, ...)")
    lp.add_argument("--runs-dir", default=None)
    common.add_json(lp)
    lp.set_defaults(func=list_runs)


def list_runs(args) -> int:
    from netpress.runs import Store, runs_root

    runs = Store(runs_root(args.runs_dir)).list_runs(args.kind)
    rows = [{"id": r["id"], "kind": r["kind"], "status": r["status"],
             "test_accuracy": (r["summary"] or {}).get("test_accuracy"), "path": r["path"]} for r in runs]
    common.emit({"runs": rows}, args.json, common.table(rows, ["id", "kind", "status", "test_accuracy", "path"]))
    return 0
