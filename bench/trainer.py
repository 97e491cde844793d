"""Trainer throughput: netpress's trainer vs a minimal hand-written torch loop, and batched replicates.

Usage: python bench/trainer.py [--rounds 3] [--iterations 917] [--replicates 5] [--batched-iterations 300]

LeNet-300-100 on Fashion-MNIST in memory, Adam 1.2e-3, batch 60 (the lottery setting), 1 thread. Peers are
measured in the same run, interleaved round by round; each figure is the median over rounds. Targets: the
trainer within 1.2x of the bare loop per epoch; 5 replicates trained batched >= 3x faster than one by one.
Each timing records this process's CPU seconds (steadier than wall time on a machine shared with other jobs;
with one thread they measure the work) and the wall seconds.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from netpress.data import DataHparams, epoch_order, load_data  # noqa: E402
from netpress.models import ModelHparams, build_model  # noqa: E402
from netpress.train import TrainingHparams, train  # noqa: E402
from netpress.train.batched import train_batched  # noqa: E402

HP = TrainingHparams(optimizer="adam", lr=1.2e-3, batch_size=60)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=917, help="iterations per timing (917 = one epoch)")
    p.add_argument("--replicates", type=int, default=5)
    p.add_argument("--batched-iterations", type=int, default=300)
    return p.parse_args()


def _model(seed=0):
    return build_model(ModelHparams("lenet300", init="glorot_normal"), (1, 28, 28), 10, seed=seed)


def bare_loop(data, iterations: int, fused: bool) -> float:
    """The minimal loop: gather a shuffled batch from memory, forward, backward, step. No evaluation."""
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=HP.lr, fused=fused or None)
    x, y, n = data.train.x, data.train.y, len(data.train)
    start = _clock()
    it = 0
    while it < iterations:
        order = epoch_order(n, 0, it // 917)
        for b in range(0, n, HP.batch_size):
            idx = order[b:b + HP.batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            if it == iterations:
                break
    return _since(start)


def netpress_train(data, iterations: int, eval_every: str) -> float:
    model = _model()
    start = _clock()
    train(model, data, HP.replace(steps=f"{iterations}it", eval_every=eval_every), device="cpu", progress=False)
    return _since(start)


def replicates(data, iterations: int, n: int, how: str) -> float:
    hps = [HP.replace(steps=f"{iterations}it", eval_every="100it", seed=s) for s in range(n)]
    models = [_model(s) for s in range(n)]
    start = _clock()
    if how == "sequential":
        for m, h in zip(models, hps):
            train(m, data, h, device="cpu", progress=False)
    else:
        train_batched(models, data, hps, device="cpu", strategy=how, progress=False)
    return _since(start)


def _clock() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) since ``start``."""
    return time.process_time() - start[0], time.perf_counter() - start[1]


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    data = load_data(DataHparams("fashion-mnist"))
    ipe = -(-len(data.train) // HP.batch_size)
    single = {"bare loop (torch Adam default)": lambda: bare_loop(data, args.iterations, fused=False),
              "bare loop (torch Adam fused)": lambda: bare_loop(data, args.iterations, fused=True),
              "netpress train, eval every epoch": lambda: netpress_train(data, args.iterations, f"{args.iterations}it"),
              "netpress train, eval every 100 it": lambda: netpress_train(data, args.iterations, "100it")}
    batched = {f"{args.replicates} x netpress train, one by one": lambda: replicates(data, args.batched_iterations, args.replicates, "sequential"),
               "train_batched (loop)": lambda: replicates(data, args.batched_iterations, args.replicates, "loop"),
               "train_batched (vmap)": lambda: replicates(data, args.batched_iterations, args.replicates, "vmap")}
    times = {k: [] for k in [*single, *batched]}
    for r in range(args.rounds):  # interleaved: every peer once per round
        for name, fn in [*single.items(), *batched.items()]:
            times[name].append(fn())
            print(f"round {r}: {name}: {times[name][-1][0]:.2f} s CPU, {times[name][-1][1]:.2f} s wall", flush=True)
    med = {k: statistics.median(c for c, _ in v) for k, v in times.items()}
    wall = {k: statistics.median(w for _, w in v) for k, v in times.items()}
    per_epoch = {k: med[k] / args.iterations * ipe for k in single}
    bare = per_epoch["bare loop (torch Adam default)"]
    seq = med[f"{args.replicates} x netpress train, one by one"]
    payload = {"iterations": args.iterations, "iterations_per_epoch": ipe, "rounds": args.rounds,
               "seconds_cpu_wall": times, "median_wall_seconds": wall, "cpu_seconds_per_epoch": per_epoch,
               "ratio_to_bare_loop": {k: v / bare for k, v in per_epoch.items()},
               "batched_speedup": {k: seq / med[k] for k in batched}, "replicates": args.replicates,
               "batched_iterations": args.batched_iterations}
    write_result("trainer", payload, _markdown(args, per_epoch, bare, med, wall, seq, batched))
    print((Path(__file__).parent / "results" / "trainer.md").read_text())


def _markdown(args, per_epoch, bare, med, wall, seq, batched) -> str:
    lines = ["# Trainer throughput: LeNet-300-100, Fashion-MNIST, Adam, batch 60, 1 thread", "",
             f"Median of {args.rounds} interleaved rounds of {args.iterations} iterations on a 2-core machine shared "
             "with ~8 other jobs: figures are CPU seconds of this process (1 thread); wall seconds, inflated by the "
             "load, are in the JSON. Read the ratios, measured side by side.", "",
             "| loop | CPU s / epoch | vs bare loop | wall s (median) |", "|---|---|---|---|"]
    lines += [f"| {k} | {v:.2f} | {v / bare:.2f}x | {wall[k]:.2f} |" for k, v in per_epoch.items()]
    best = max(seq / med[k] for k in batched if k != next(iter(batched)))
    lines += ["", f"Target: trainer within 1.2x of the bare loop per epoch (evaluation once per epoch): "
                  f"{'met' if per_epoch['netpress train, eval every epoch'] / bare <= 1.2 else 'MISSED'}.", "",
              f"## {args.replicates} replicates, {args.batched_iterations} iterations each, evaluation every 100 it", "",
              "| how | CPU seconds | speed-up | wall s (median) |", "|---|---|---|---|"]
    lines += [f"| {k} | {med[k]:.2f} | {seq / med[k]:.2f}x | {wall[k]:.2f} |" for k in batched]
    lines += ["", f"Target >= 3x: {'met' if best >= 3 else 'MISSED'} (best {best:.2f}x). On a CPU these matmuls are "
                  "compute-bound (one LeNet-300-100 step at batch 60 is ~0.1 GFLOP), so stacking saves only the "
                  "per-step overheads (optimizer, autograd, evaluation passes); kernel-launch-bound GPUs are where "
                  "the vmap strategy pays."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
