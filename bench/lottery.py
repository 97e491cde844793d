"""Lottery tickets on Fashion-MNIST with LeNet-300-100 (Frankle & Carbin 2019, shortened to fit a shared CPU).

Usage: python bench/lottery.py [--epochs 3] [--levels 15] [--replicates 1] [--controls reinit,random-mask]

Paper setting kept: Adam 1.2e-3, batch 60, Glorot-normal init, 5K validation examples for early stopping, 20% of
the hidden weights and 10% of the output layer pruned per level (global), rewinding to initialization.
Shortened: each training is ``--epochs`` epochs (the paper trains 50K iterations, ~55 epochs).

Targets (paper shape): tickets within 0.3 pt of dense down to <= 3.6% weights; tickets beat random re-init by
>= 2 pt at ~3%; tickets reach the early-stopping iteration earlier than the dense net at 20-50% of weights;
LeNet stable at initialization (LMC error barrier < 2 pt).
Stages are cached in bench/.runs, so re-running resumes a killed run and rewrites the results in seconds.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, RUNS, write_result  # noqa: E402

from netpress.data import DataHparams, load_data  # noqa: E402
from netpress.lottery import LotteryHparams, lottery_training_defaults, run_lottery  # noqa: E402
from netpress.models import ModelHparams  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--levels", type=int, default=15)
    p.add_argument("--prune-fraction", type=float, default=0.2)
    p.add_argument("--replicates", type=int, default=1)
    p.add_argument("--controls", default="reinit,random-mask")
    p.add_argument("--control-levels", default="1,4,7,11,15", help="levels with controls ('' = all)")
    p.add_argument("--lmc-levels", default="0,7,15")
    p.add_argument("--eval-every", default="250it")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a loaded 2-core box)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    model_hp = ModelHparams("lenet300", init="glorot_normal")
    train_hp = lottery_training_defaults().replace(steps=f"{args.epochs}ep", eval_every=args.eval_every)
    hp = LotteryHparams(levels=args.levels, prune_fraction=args.prune_fraction, output_fraction=0.1, scope="global",
                        rewind="0it", controls=args.controls, control_levels=args.control_levels, replicates=args.replicates, lmc_levels=args.lmc_levels)
    data = load_data(DataHparams("fashion-mnist"))
    start = time.perf_counter()
    res = run_lottery(model_hp, DataHparams("fashion-mnist"), train_hp, hp, root=RUNS, data=data, device="cpu",
                      on_stage=_log)
    wall = time.perf_counter() - start
    from netpress.report.lottery import checks, write_report

    files = write_report(res.summary, RESULTS, stem="lottery", title="Lottery tickets: LeNet-300-100 on Fashion-MNIST")
    verdict = checks(res.summary)
    md = _markdown(files["markdown"], verdict, train_hp, hp, wall)
    write_result("lottery", {"experiment": res.id, "training": train_hp.to_dict(), "lottery": hp.to_dict(),
                             "wall_seconds_this_invocation": round(wall, 1), "checks": verdict,
                             "summary": res.summary, "figures": [str(p.name) for p in files["figures"]]}, md)
    print(md)


def _log(row: dict) -> None:
    print(f"rep {row['replicate']} level {row['level']:2d} {row['branch']:12s} remaining {100 * row['remaining']:6.2f}% "
          f"test {row['test_accuracy']:.4f} early-stop it {row['early_stop_iteration']} "
          f"(acc {row['early_stop_test_accuracy']:.4f})", flush=True)


def _markdown(report_md: str, verdict: list[dict], train_hp, hp, wall: float) -> str:
    lines = ["# Lottery tickets: LeNet-300-100 on Fashion-MNIST", "",
             f"Training per level: Adam lr {train_hp.lr}, batch {train_hp.batch_size}, {train_hp.steps} "
             f"(paper: 50K iterations), eval every {train_hp.eval_every}; IMP {hp.prune_fraction:.0%} per level "
             f"(output {hp.output_fraction:.0%}), {hp.scope}, rewind {hp.rewind}, {hp.replicates} replicate(s); "
             f"this invocation took {wall / 60:.1f} min.", "",
             "## Targets (paper shape) vs measured", "", "| check | target | measured | met |", "|---|---|---|---|"]
    for c in verdict:
        lines.append(f"| {c['check']} | {c['target']} | {c['measured']} | {'yes' if c['met'] else 'NO'} |")
    return "\n".join(lines) + "\n\n" + report_md.split("\n", 1)[1]  # the report's own title dropped


if __name__ == "__main__":
    main()
