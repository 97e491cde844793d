"""Where trials run: in this process, a local process pool (the default), or a Ray cluster.

Every executor takes plain trial dicts and yields the workers' result dicts as they finish; only the driver
writes the store.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from typing import Iterator, Protocol

from netpress.errors import ConfigError
from netpress.sweep.runner import run_trial


class Executor(Protocol):
    """Runs ``run_trial`` for each trial and yields the results in completion order."""

    name: str

    def map(self, trials: list[dict], root: str, data_dir: str | None, device: str) -> Iterator[dict]: ...


class InProcess:
    """Trials one after another in this process (debugging, tests, a single trial).

    Args:
        report: trials print progress lines to stderr.
    """

    name = "inprocess"

    def __init__(self, report: bool = False):
        self.report = report

    def map(self, trials, root, data_dir, device):
        for t in trials:
            yield run_trial(t, root, data_dir, device, report=self.report)


class LocalPool:
    """A process pool sized to the machine: ``workers`` processes (default: one per core, at most one per
    trial), each with ``cores // workers`` intra-op threads. No server, nothing to configure.

    Args:
        workers: processes (0: ``os.cpu_count()``).
        report: trials print progress lines to stderr (the workers share the driver's).
    """

    name = "local"

    def __init__(self, workers: int = 0, report: bool = False):
        if workers < 0:
            raise ConfigError(f"workers must be >= 0, got {workers}")
        self.workers = workers
        self.report = report

    def map(self, trials, root, data_dir, device):
        cores = os.cpu_count() or 1
        workers = max(1, min(self.workers or cores, len(trials)))
        threads = max(1, cores // workers)
        ctx = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
        with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = {pool.submit(run_trial, t, root, data_dir, device, threads, self.report): t for t in trials}
            for f in cf.as_completed(futures):
                try:
                    yield f.result()
                except Exception as exc:  # the worker process died (crash, out of memory): record, go on
                    yield worker_failure(futures[f], exc)


class RayExecutor:
    """Trials as Ray tasks (one CPU each by default) on a running cluster, or on a local instance.

    Args:
        address: ``'auto'`` (the running cluster, else a new local instance) or a cluster address
            (``'ray://head:10001'``, ``'head:6379'``).
        cpus_per_trial: CPUs Ray reserves per trial (also the trial's torch threads).
        report: trials print progress lines, which Ray forwards to the driver's console.

    Workers need netpress installed and the runs folder on a shared filesystem (the path the driver gives);
    the data is loaded on each worker from ``data_dir`` / ``$NETPRESS_DATA``.
    """

    name = "ray"

    def __init__(self, address: str = "auto", cpus_per_trial: int = 1, report: bool = False):
        self.address = address
        self.cpus = cpus_per_trial
        self.report = report

    def map(self, trials, root, data_dir, device):
        ray = _ray()
        if not ray.is_initialized():
            _connect(ray, self.address, self.report)
        task = ray.remote(num_cpus=self.cpus, max_retries=0)(run_trial)
        refs = {task.remote(t, root, data_dir, device, self.cpus, self.report): t for t in trials}
        pending = list(refs)
        while pending:  # results come back as tasks finish: the driver reports progress and writes the store
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                yield ray.get(ready[0])
            except Exception as exc:  # the worker or its node died
                yield worker_failure(refs[ready[0]], exc)


def worker_failure(trial: dict, exc: BaseException) -> dict:
    """The result of a trial whose worker died before returning one (same keys as :func:`run_trial`'s).

    Args:
        trial: the trial dict that was sent.
        exc: what the executor raised.

    Returns:
        A ``failed`` result naming the cause.

    Example:
        >>> worker_failure(trial.to_dict(), BrokenProcessPool("killed"))["status"]
        'failed'
    """
    from netpress.sweep.trials import Trial

    t = Trial.from_dict(trial)
    message = f"worker died: {type(exc).__name__}: {exc}".splitlines()[0]
    return {"index": t.index, "run_id": t.run_id, "params": t.params, "reused": False, "summary": None, "points": [],
            "error": message, "status": "failed", "seconds": 0.0}


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs the 'ray' extra: pip install 'netpress[ray]'") from None
    return ray


def _connect(ray, address: str, forward_logs: bool) -> None:
    if address != "auto":
        ray.init(address=address, log_to_driver=forward_logs)
        return
    try:
        ray.init(address="auto", log_to_driver=forward_logs)
    except (ConnectionError, RuntimeError):  # no cluster running: start one here
        ray.init(include_dashboard=False, log_to_driver=forward_logs)


def make_executor(ray: str | None = None, workers: int = 0, report: bool = False) -> Executor:
    """The executor for a CLI call: Ray when ``ray`` is an address or ``'auto'``, else the local pool.

    Args:
        ray: ``None`` (local), ``'auto'`` or a Ray address.
        workers: local processes (0: one per core); 1 runs in this process.
        report: trials print progress lines to stderr (on Ray, forwarded to the driver).

    Returns:
        An executor.

    Example:
        >>> make_executor().name
        'local'
    """
    if ray:
        return RayExecutor(ray, report=report)
    return InProcess(report) if workers == 1 else LocalPool(workers, report)
