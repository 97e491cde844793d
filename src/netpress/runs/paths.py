"""Where runs live: ``$NETPRESS_HOME`` or ``./netpress_runs``; one folder per run, named by kind and hash."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from netpress.fileio import atomic_write_text
from netpress.hparams import Hparams, hparams_hash


def runs_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("NETPRESS_HOME") or "netpress_runs")


def run_id(kind: str, *parts: Hparams) -> str:
    """``'<kind>_<hash of non-default hyperparameters>'``."""
    return f"{kind}_{hparams_hash(kind, *parts)}"


def write_hparams(folder: Path, kind: str, parts: dict[str, Hparams], extra: dict | None = None) -> None:
    """A readable ``hparams.json``: every value, with the non-default ones listed separately."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"kind": kind,
           **{k: v.to_dict() for k, v in parts.items()},
           "non_default": {k: v.non_default() for k, v in parts.items()},
           **(extra or {})}
    atomic_write_text(folder / "hparams.json", json.dumps(doc, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def run_lock(folder: Path):
    """Exclusive lock on a run folder, so two processes never train the same run at once."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
