"""``run_sweep``: expand a spec, run the unfinished trials on an executor, record everything in the store."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

from netpress.errors import UnknownNameError
from netpress.runs import Store, run_id, runs_root, write_hparams
from netpress.sweep.executors import Executor, LocalPool
from netpress.sweep.spec import SweepSpec, load_spec
from netpress.sweep.trials import Trial, expand

KIND = "sweep"


@dataclasses.dataclass
class SweepResult:
    """A sweep's trials and their outcomes.

    Attributes:
        id: ``sweep_<hash of the spec>``.
        spec: the spec.
        trials: one dict per trial (``index``, ``run_id``, ``params``, ``status``, ``error``, ``summary``,
            ``points``, ``seconds``, ``skipped``), in trial order.
        seconds: wall time of this call.
    """

    id: str
    spec: SweepSpec
    trials: list[dict]
    seconds: float

    @property
    def failed(self) -> list[dict]:
        return [t for t in self.trials if t["status"] != "done"]

    def summary(self) -> dict:
        ran = [t for t in self.trials if not t.get("skipped")]
        return {"sweep": self.id, "kind": self.spec.kind, "trials": len(self.trials),
                "done": sum(t["status"] == "done" for t in self.trials), "failed": len(self.failed),
                "skipped": len(self.trials) - len(ran), "seconds": self.seconds}


def sweep_id(spec: SweepSpec) -> str:
    """The sweep's id: ``sweep_<hash>`` of the spec's non-default values (the same spec is the same sweep).

    Args:
        spec: the sweep.

    Returns:
        ``'sweep_<12 hex digits>'``.

    Example:
        >>> sweep_id(parse_spec({"params": {"training.lr": [0.1]}})).startswith("sweep_")
        True
    """
    return run_id(KIND, spec)


def run_sweep(spec: SweepSpec | str | Path, *, root: str | Path | None = None, executor: Executor | None = None,
              data_dir: str | None = None, device: str = "cpu",
              on_result: Callable[[dict], None] | None = None) -> SweepResult:
    """Run every unfinished trial of a sweep; finished ones are skipped, killed ones resume.

    Args:
        spec: a :class:`SweepSpec` or a YAML path; validated (and every trial built) before any work.
        root: runs folder (default ``$NETPRESS_HOME`` or ``./netpress_runs``).
        executor: where trials run (default: :class:`LocalPool`, one process per core).
        data_dir: where the data files are.
        device: ``cpu``, ``cuda`` or ``auto`` for each trial.
        on_result: called with each trial's result as it finishes (or is found finished).

    Returns:
        :class:`SweepResult`; a failing trial is recorded with its error and does not stop the others.

    Example:
        >>> res = run_sweep(parse_spec({"base": {"data": {"name": "digits"}}, "params": {"training.lr": [0.1, 0.01]}}))
        >>> [t["status"] for t in res.trials]
        ['done', 'done']
    """
    start = time.perf_counter()
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    trials = expand(spec)
    root = runs_root(root)
    sid, store = sweep_id(spec), Store(root)
    write_hparams(root / sid, KIND, {"sweep": spec}, {"trials": [t.to_dict() for t in trials]})
    store.upsert_run(sid, KIND, root / sid, spec.to_dict(), "running")
    finished = {r["trial"]: r for r in store.trials(sid) if r["status"] == "done" and r["result"]}
    results = {}
    for t in trials:
        if t.index in finished and finished[t.index]["run_id"] == t.run_id:
            results[t.index] = {**finished[t.index]["result"], "skipped": True}
            if on_result:
                on_result(results[t.index])
        else:
            store.upsert_trial(sid, t.index, t.run_id, t.params, "running")
    todo = [t.to_dict() for t in trials if t.index not in results]
    # workers get an absolute root: Ray workers on other nodes run in other folders (the runs folder is shared)
    for res in (executor or LocalPool()).map(todo, str(root.resolve()), data_dir, device) if todo else ():
        _record(store, sid, root, trials[res["index"]], res)
        results[res["index"]] = {**res, "skipped": False}
        if on_result:
            on_result(results[res["index"]])
    out = SweepResult(sid, spec, [results[i] for i in sorted(results)], time.perf_counter() - start)
    store.upsert_run(sid, KIND, root / sid, spec.to_dict(), "done" if not out.failed else "failed", out.summary())
    return out


def _record(store: Store, sid: str, root: Path, trial: Trial, res: dict) -> None:
    """The driver's write of one result: the trial's run (also when a worker elsewhere wrote its own store)."""
    sections = {"model": trial.model, "data": trial.data, "training": trial.training, "lottery": trial.lottery}
    flat = {k: v.to_dict() for k, v in sections.items() if v is not None}
    if trial.recipe is not None:
        flat["recipe"] = trial.recipe
    summary = res["summary"] if res["status"] == "done" else {"error": res["error"]}
    store.upsert_run(res["run_id"], trial.kind, root / res["run_id"], flat, res["status"], summary)
    kept = {k: res[k] for k in ("index", "run_id", "params", "status", "error", "summary", "points", "seconds", "reused")}
    store.upsert_trial(sid, trial.index, res["run_id"], trial.params, res["status"], res["error"], kept)


def load_sweep(ref: str, root: str | Path | None = None) -> tuple[str, SweepSpec, list[dict]]:
    """A stored sweep by id (or unique prefix) or by its spec file.

    Args:
        ref: ``sweep_<hash>``, a prefix of it, or the YAML spec path.
        root: runs folder.

    Returns:
        ``(sweep id, spec, trial rows from the store)``.

    Raises:
        UnknownNameError: no such sweep (or an ambiguous prefix).

    Example:
        >>> sid, spec, rows = load_sweep("sweep.yaml")
    """
    store = Store(runs_root(root))
    if Path(ref).is_file():
        spec = load_spec(ref)
        return sweep_id(spec), spec, store.trials(sweep_id(spec))
    matches = [r for r in store.list_runs(KIND) if r["id"].startswith(ref) or r["id"][len(KIND) + 1:].startswith(ref)]
    if len(matches) != 1:
        known = ", ".join(r["id"] for r in store.list_runs(KIND)) or "none"
        raise UnknownNameError(f"{'no' if not matches else 'ambiguous'} sweep {ref!r}; stored sweeps: {known}")
    run = matches[0]
    return run["id"], SweepSpec(**run["hparams"]), store.trials(run["id"])
