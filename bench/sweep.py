"""Sweep overhead per trial: in-process, local process pool and Ray executors against calling ``train_run``
directly for the same tiny trials.

Usage: python bench/sweep.py [--trials 16] [--rounds 2] [--no-ray]

Each trial trains LeNet-300-100 on sklearn digits for a few iterations (~0.1 s of work), so the wall time per
trial is mostly what the sweep machinery costs: spec expansion, store writes, process start-up and torch import
in pool workers, Ray task dispatch. Every executor writes into a fresh runs folder (nothing is skipped), then the
same sweep is re-run to time skipping finished trials. Measured on a 2-core machine shared with other jobs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from netpress.data import load_data  # noqa: E402
from netpress.runs import train_run  # noqa: E402
from netpress.sweep import InProcess, LocalPool, RayExecutor, expand, parse_spec, run_sweep  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-ray", action="store_true")
    return p.parse_args()


def spec(n: int):
    return parse_spec({"kind": "train", "base": {"data": {"name": "digits"},
                                                 "training": {"steps": "5it", "eval_every": "5it"}},
                       "seeds": list(range(n))})


def direct(n: int, root: Path) -> float:
    data = load_data("digits")
    start = time.perf_counter()
    for t in expand(spec(n)):
        train_run(t.model, t.data, t.training, root=root, data=data, device="cpu", progress=False)
    return time.perf_counter() - start


def swept(n: int, root: Path, executor) -> tuple[float, float]:
    start = time.perf_counter()
    res = run_sweep(spec(n), root=root, executor=executor, device="cpu")
    first = time.perf_counter() - start
    assert res.summary()["done"] == n, res.failed[:1]
    start = time.perf_counter()
    again = run_sweep(spec(n), root=root, executor=executor, device="cpu")
    assert again.summary()["skipped"] == n
    return first, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)  # as each pool / Ray worker runs (one trial per core)
    n = args.trials
    ray = None
    if not args.no_ray:
        import ray  # noqa: F811

        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
    runs = {"direct train_run": [], "in-process": [], "local pool (2 workers)": [], "ray (local instance, 2 CPUs)": []}
    rerun = {k: [] for k in runs if k != "direct train_run"}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(-1, args.rounds):  # interleaved, fresh runs folders each time; round -1 warms up, discarded
            d = direct(n, Path(tmp) / f"direct{r}")
            if r >= 0:
                runs["direct train_run"].append(d)
            for name, ex in (("in-process", InProcess()), ("local pool (2 workers)", LocalPool(2)),
                             ("ray (local instance, 2 CPUs)", RayExecutor() if ray else None)):
                if ex is None:
                    continue
                first, again = swept(n, Path(tmp) / f"{name[:5]}{r}", ex)
                if r >= 0:
                    runs[name].append(first)
                    rerun[name].append(again)
                print(f"round {r}: {name}: {first:.2f} s, re-run {again:.2f} s", flush=True)
    if ray:
        ray.shutdown()
    med = {k: statistics.median(v) for k, v in runs.items() if v}
    base = med["direct train_run"] / n
    rows = {k: {"wall_seconds": v, "seconds_per_trial": v / n, "overhead_per_trial": v / n - base,
                "rerun_seconds_per_trial": statistics.median(rerun[k]) / n if k in rerun and rerun[k] else None}
            for k, v in med.items()}
    payload = {"trials": n, "rounds": args.rounds, "runs": runs, "rerun": rerun, "summary": rows,
               "ray_init_seconds": None if not ray else ray_start}
    lines = ["# Sweep overhead per trial", "",
             f"{n} tiny training trials (LeNet-300-100, digits, 5 iterations) per executor, median of {args.rounds} "
             "interleaved rounds after a discarded warm-up round (imports, data, Ray workers), fresh runs folders; a 2-core machine shared with ~8 other jobs (absolute seconds "
             "are inflated by the load; all executors measured side by side). Overhead = seconds per trial minus "
             "the direct `train_run` loop's.", "",
             "| executor | wall s | s / trial | overhead / trial | re-run (all skipped) s / trial |", "|---|---|---|---|---|"]
    for k, v in rows.items():
        again = "" if v["rerun_seconds_per_trial"] is None else f"{v['rerun_seconds_per_trial']:.3f}"
        lines.append(f"| {k} | {v['wall_seconds']:.2f} | {v['seconds_per_trial']:.3f} | {v['overhead_per_trial']:+.3f} | {again} |")
    if ray:
        lines += ["", f"`ray.init` of the local instance (not included above): {ray_start:.1f} s."]
    lines += ["", "The local pool's overhead is mostly worker start-up (a fresh interpreter importing torch per "
                  "worker, amortised over the trials); with two cores it also runs two trials at once, which longer "
                  "trials turn into a speed-up."]
    write_result("sweep", payload, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
