"""Runs: folders named by a hash of non-default hyperparameters, ``hparams.json``, a SQLite store, idempotent stages."""
from netpress.runs.paths import run_id, run_lock, runs_root, write_hparams
from netpress.runs.store import Store, check_runs_root
from netpress.runs.training import recorded_threads  # noqa: F401
from netpress.runs.training import (TrainedRun, load_run_model, load_trained_run, read_json, resolve_run, run_hparams,
                                   run_part, run_summary, torch_threads, train_run, write_run)

__all__ = ["recorded_threads", "run_lock", "run_id", "runs_root", "write_hparams", "Store", "TrainedRun", "load_run_model", "resolve_run",
           "run_hparams", "train_run", "check_runs_root", "load_trained_run", "run_part", "run_summary", "torch_threads",
           "read_json", "write_run"]
