"""Embedded SQLite store of runs and their metrics (one file beside the run folders)."""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

from netpress.errors import RunError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, path TEXT NOT NULL, hparams TEXT NOT NULL,
    status TEXT NOT NULL, summary TEXT, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, iteration INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, iteration, name)
);
CREATE TABLE IF NOT EXISTS sweep_trials (
    sweep_id TEXT NOT NULL, trial INTEGER NOT NULL, run_id TEXT NOT NULL, params TEXT NOT NULL,
    status TEXT NOT NULL, error TEXT, result TEXT, updated REAL NOT NULL,
    PRIMARY KEY (sweep_id, trial)
);
"""


class Store:
    """Runs and metrics in ``<root>/netpress.db``.

    Example:
        >>> store = Store(Path("netpress_runs"))
        >>> store.list_runs()
    """

    def __init__(self, root: Path):
        self.path = check_runs_root(root) / "netpress.db"
        with self._connect() as db:
            db.executescript(_SCHEMA)
            db.execute("SELECT id, kind, path, hparams, status, summary, created, updated FROM runs LIMIT 1").fetchall()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction, closed afterwards; any database failure becomes a :class:`RunError`."""
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
                db.row_factory = sqlite3.Row
                with db:
                    yield db
        except sqlite3.Error as exc:
            raise RunError(f"runs database {self.path} is unusable ({exc}); move it away to start a new one") from None

    def upsert_run(self, run_id: str, kind: str, path: Path, hparams: dict, status: str, summary: dict | None = None) -> None:
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT INTO runs (id, kind, path, hparams, status, summary, created, updated) VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET status=excluded.status, summary=COALESCE(excluded.summary, runs.summary), "
                "updated=excluded.updated, path=excluded.path",
                (run_id, kind, str(path), json.dumps(hparams, sort_keys=True), status,
                 None if summary is None else json.dumps(summary), now, now),
            )

    def log_metrics(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Each row holds ``iteration`` and named values; re-logging the same point overwrites it."""
        values = [(run_id, int(r["iteration"]), k, None if v is None else float(v))
                  for r in rows for k, v in r.items() if k != "iteration" and isinstance(v, (int, float, type(None)))]
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO metrics VALUES (?,?,?,?)", values)

    def metrics(self, run_id: str, name: str) -> list[tuple[int, float]]:
        with self._connect() as db:
            rows = db.execute("SELECT iteration, value FROM metrics WHERE run_id=? AND name=? ORDER BY iteration",
                              (run_id, name)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def list_runs(self, kind: str | None = None, *, status: str | None = None, sweep: str | None = None,
                  where: dict[str, Any] | None = None) -> list[dict]:
        """Runs, oldest first, filtered.

        Args:
            kind: only this kind (``train``, ``lottery``, ``compress``, ``sweep``).
            status: only this status (``running``, ``done``, ``failed``).
            sweep: only the runs that are trials of this sweep id.
            where: ``{"training.lr": 0.1}``: dotted paths into ``hparams`` (or ``summary``) that must equal the
                value (compared as text, so ``'0.1'`` matches ``0.1``).

        Returns:
            One dict per run with ``hparams`` and ``summary`` decoded.
        """
        q, conds, args = "SELECT * FROM runs", [], []
        for column, value in (("kind", kind), ("status", status)):
            if value:
                conds.append(f"{column}=?")
                args.append(value)
        if sweep:
            conds.append("id IN (SELECT run_id FROM sweep_trials WHERE sweep_id=?)")
            args.append(sweep)
        q += " WHERE " + " AND ".join(conds) if conds else ""
        with self._connect() as db:
            rows = db.execute(q + " ORDER BY created", args).fetchall()
        try:
            runs = [{**dict(r), "hparams": json.loads(r["hparams"]),
                     "summary": json.loads(r["summary"]) if r["summary"] else None} for r in rows]
        except (TypeError, ValueError) as exc:
            raise RunError(f"runs database {self.path} holds malformed rows ({exc}); move it away") from None
        return [r for r in runs if all(_matches(r, k, v) for k, v in (where or {}).items())]

    def upsert_trial(self, sweep_id: str, trial: int, run_id: str, params: dict, status: str,
                     error: str | None = None, result: dict | None = None) -> None:
        """Record (or update) trial ``trial`` of a sweep: its run, swept values, status, error and result."""
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO sweep_trials VALUES (?,?,?,?,?,?,?,?)",
                       (sweep_id, trial, run_id, json.dumps(params, sort_keys=True), status, error,
                        None if result is None else json.dumps(result, sort_keys=True, default=float), time.time()))

    def trials(self, sweep_id: str) -> list[dict]:
        """The recorded trials of a sweep, in trial order."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM sweep_trials WHERE sweep_id=? ORDER BY trial", (sweep_id,)).fetchall()
        return [{**dict(r), "params": json.loads(r["params"]),
                 "result": json.loads(r["result"]) if r["result"] else None} for r in rows]

    def find(self, prefix: str) -> list[dict]:
        return [r for r in self.list_runs() if r["id"].startswith(prefix)]


def check_runs_root(root: Path) -> Path:
    """Create the runs folder if needed and check it is a writable folder; returns ``root``.

    Raises:
        RunError: ``root`` is a file, cannot be created, or is not writable (``$NETPRESS_HOME`` / ``--runs-dir``).
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise RunError(f"runs folder {root} is not a folder ($NETPRESS_HOME or --runs-dir)")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the runs folder {root} ({exc.strerror})") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise RunError(f"runs folder {root} is not writable ($NETPRESS_HOME or --runs-dir)")
    return root


def _matches(run: dict, path: str, want: Any) -> bool:
    for top in ("hparams", "summary"):
        node: Any = run.get(top) or {}
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return str(node) == str(want) or _same_number(node, want)
    return False


def _same_number(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False
