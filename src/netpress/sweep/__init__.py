"""Sweeps: grid or random search over any training / pruning / quantization / lottery setting and seeds.

Each trial is an existing idempotent, hash-named run, so re-running a sweep skips finished trials and resumes
killed ones. Trials run in a local process pool by default, or on Ray (``RayExecutor``).

Example:
    >>> from netpress.sweep import run_sweep
    >>> result = run_sweep("sweep.yaml")
    >>> result.summary()["done"]
"""
from netpress.sweep.api import SweepResult, load_sweep, run_sweep, sweep_id
from netpress.sweep.executors import InProcess, LocalPool, RayExecutor, make_executor
from netpress.sweep.spec import SweepSpec, load_spec, parse_spec
from netpress.sweep.trials import Trial, expand

__all__ = ["SweepResult", "load_sweep", "run_sweep", "sweep_id", "InProcess", "LocalPool", "RayExecutor",
           "make_executor", "SweepSpec", "load_spec", "parse_spec", "Trial", "expand"]
