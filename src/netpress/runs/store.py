"""Embedded SQLite store of runs and their metrics (one file beside the run folders)."""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, path TEXT NOT NULL, hparams TEXT NOT NULL,
    status TEXT NOT NULL, summary TEXT, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, iteration INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, iteration, name)
);
"""


class Store:
    """Runs and metrics in ``<root>/netpress.db``.

    Example:
        >>> store = Store(Path("netpress_runs"))
        >>> store.list_runs()
    """

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "netpress.db"
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

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

    def list_runs(self, kind: str | None = None) -> list[dict]:
        q, args = "SELECT * FROM runs", ()
        if kind:
            q, args = q + " WHERE kind=?", (kind,)
        with self._connect() as db:
            rows = db.execute(q + " ORDER BY created", args).fetchall()
        return [{**dict(r), "hparams": json.loads(r["hparams"]),
                 "summary": json.loads(r["summary"]) if r["summary"] else None} for r in rows]

    def find(self, prefix: str) -> list[dict]:
        return [r for r in self.list_runs() if r["id"].startswith(prefix)]
