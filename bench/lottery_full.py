"""Lottery tickets at Frankle & Carbin's protocol, run as a sweep: LeNet-300-100 on Fashion-MNIST, 50K iterations
per level, evaluation every 100 iterations, 5 replicates, reinit and random-mask controls, early stopping, LMC.

Usage:
    python bench/lottery_full.py              # the paper's protocol (many hours on 2 cores; see the measured rate)
    python bench/lottery_full.py --reduced    # a REDUCED protocol that fits ~15 min on a shared 2-core machine

Paper setting: Adam 1.2e-3, batch 60, Glorot-normal init, 5K validation examples for early stopping, 20% of the
hidden weights and 10% of the output layer pruned per level (global), rewinding to initialization.
Every stage records its wall seconds, so the result states the measured rate (seconds per training iteration,
evaluation at the protocol's cadence included) and the full protocol's time at that rate.
Writes bench/results/lottery_full.{json,md} (paper protocol) or lottery_full_reduced.{json,md} (--reduced), with
mean ± std bands over replicates in the plots. Stages are cached in bench/.runs: a re-run resumes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, RUNS, write_result  # noqa: E402

from netpress.report.lottery import checks, level_table, lmc_table, plot_interpolation  # noqa: E402
from netpress.report.plots import finish_axes, new_figure  # noqa: E402
from netpress.sweep import InProcess, parse_spec, run_sweep  # noqa: E402

PAPER = {"iterations": 50000, "eval_every": "100it", "replicates": 5, "levels": 15, "prune_fraction": 0.2,
         "output_fraction": 0.1, "control_levels": "", "lmc_levels": "0,7,15"}
REDUCED = {"iterations": 1000, "eval_every": "100it", "replicates": 3, "levels": 7, "prune_fraction": 0.4,
           "output_fraction": 0.2, "control_levels": "1,3,5,7", "lmc_levels": "0,7"}
PAPER_CLAIMS = [  # Frankle & Carbin 2019 (1803.03635v5), LeNet-300-100 on MNIST
    ("tickets match the dense net down to", "3.6% weights"),
    ("tickets learn faster (early-stop iteration)", "38% faster at 21% weights"),
    ("random re-init falls behind from", "21.1% weights; tickets from 2.9%"),
    ("ticket vs re-init at 21%", "+0.5 pt, 2.51x faster"),
    ("LMC (1912.05671): LeNet stable at init", "instability < 2 pt"),
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reduced", action="store_true", help="the reduced protocol (clearly labelled in the results)")
    for k, v in PAPER.items():
        p.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=None, help=f"paper: {v}")
    p.add_argument("--sequential", action="store_true", help="train replicates one by one (default: batched)")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


def spec_for(cfg: dict, batched: bool, name: str):
    """The experiment as a one-member lottery sweep (more rewinds or seeds are more `params` values)."""
    return parse_spec({
        "kind": "lottery", "name": name, "batch_replicates": batched,
        "base": {"model": {"name": "lenet300", "init": "glorot_normal"}, "data": {"name": "fashion-mnist"},
                 "training": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60, "steps": f"{cfg['iterations']}it",
                              "eval_every": cfg["eval_every"]},
                 "lottery": {"levels": cfg["levels"], "prune_fraction": cfg["prune_fraction"],
                             "output_fraction": cfg["output_fraction"], "scope": "global",
                             "controls": "reinit,random-mask", "control_levels": cfg["control_levels"],
                             "replicates": cfg["replicates"], "lmc_levels": cfg["lmc_levels"], "lmc_points": 11}},
        "params": {"lottery.rewind": ["0it"]}})


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    cfg = {**(REDUCED if args.reduced else PAPER),
           **{k: getattr(args, k) for k in PAPER if getattr(args, k) is not None}}
    label = "REDUCED protocol" if cfg != PAPER else "paper protocol"
    stem = "lottery_full" if cfg == PAPER else "lottery_full_reduced"
    start = time.perf_counter()
    res = run_sweep(spec_for(cfg, not args.sequential, stem), root=RUNS, executor=InProcess(), device="cpu")
    wall = time.perf_counter() - start
    trial = res.trials[0]
    if trial["status"] != "done":
        raise SystemExit(f"lottery trial failed: {trial['error']}")
    doc = json.loads((RUNS / trial["run_id"] / "results.json").read_text())
    rows, summary = doc["rows"], doc["summary"]
    timing = _timing(rows, RUNS / trial["run_id"])
    figs = [_band_plot(summary, "early_stop_test_accuracy", 100, "test accuracy at early stop (%)", RESULTS / f"{stem}_accuracy.png", label),
            _band_plot(summary, "early_stop_iteration", 1, "early-stop iteration", RESULTS / f"{stem}_early_stop.png", label)]
    if summary["lmc"]:
        figs.append(plot_interpolation(summary, RESULTS / f"{stem}_lmc.png"))
    verdict = checks(summary)
    payload = {"protocol": label, "config": cfg, "sweep": res.id, "experiment": trial["run_id"],
               "wall_seconds_this_invocation": round(wall, 1), "timing": timing, "checks": verdict,
               "summary": summary, "figures": [p.name for p in figs]}
    md = _markdown(label, cfg, res, trial, wall, timing, verdict, summary, figs)
    write_result(stem, payload, md)
    print(md)


def _timing(rows: list[dict], folder: Path) -> dict:
    """Wall seconds per level (all replicates and branches, from each stage's timing.json) and the measured
    seconds per training iteration."""
    per_level, its = defaultdict(float), defaultdict(int)
    for r in rows:
        timing = folder / f"replicate_{r['replicate']}" / f"level_{r['level']:02d}" / r["branch"] / "timing.json"
        seconds = json.loads(timing.read_text())["seconds"] if timing.exists() else r.get("seconds", float("nan"))
        per_level[r["level"]] += seconds
        its[r["level"]] += r["iterations"]  # iterations this stage trained (a rewound stage trains T - k)
    total_s, total_it = sum(per_level.values()), sum(its.values())
    rate = total_s / max(total_it, 1)
    full = PAPER
    trainings = full["replicates"] * (1 + full["levels"] * 3)  # tickets + reinit + random-mask at every level
    lmc = full["replicates"] * len(full["lmc_levels"].split(",")) * 2
    full_its = (trainings + lmc) * full["iterations"]
    return {"per_level_seconds": dict(per_level), "per_level_iterations": dict(its), "seconds_per_iteration": rate,
            "full_protocol_trainings": trainings + lmc, "full_protocol_iterations": full_its,
            "full_protocol_hours_at_this_rate": full_its * rate / 3600}


def _band_plot(summary: dict, metric: str, scale: float, ylabel: str, path: Path, label: str) -> Path:
    """Mean ± std over replicates against the weights remaining, per branch (the paper's Figure 3/4 style)."""
    fig, ax = new_figure()
    for i, branch in enumerate(summary["branches"]):
        pts = [(lv["remaining"], lv["branches"][branch][metric]) for lv in summary["levels"] if branch in lv["branches"]]
        if branch != "ticket":
            pts = [(summary["levels"][0]["remaining"], summary["levels"][0]["branches"]["ticket"][metric])] + pts
        xs = [100 * x for x, _ in pts]
        mean = [scale * s["mean"] for _, s in pts]
        std = [scale * s["std"] for _, s in pts]
        ax.plot(xs, mean, marker="o", ms=3, color=f"C{i}", label=branch)
        ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], color=f"C{i}", alpha=0.2)
    for x, text in ((3.6, "paper: tickets match dense to 3.6%"), (21.1, "paper: reinit degrades from 21.1%")):
        ax.axvline(x, color="grey", ls=":", lw=1)
        ax.text(x, ax.get_ylim()[0], text, rotation=90, fontsize=6, va="bottom", ha="right", color="grey")
    ax.set_xscale("log")
    ax.invert_xaxis()
    n = summary["levels"][0]["branches"]["ticket"][metric]["n"]
    return finish_axes(fig, ax, path, xlabel="weights remaining (%)", ylabel=ylabel,
                       title=f"LeNet-300-100, F-MNIST: {label}, mean ± std of {n}")


def _markdown(label, cfg, res, trial, wall, timing, verdict, summary, figs) -> str:
    t = timing
    lines = [f"# Lottery tickets at the paper's protocol: LeNet-300-100 on Fashion-MNIST — {label}", "",
             f"**{label}**: {cfg['iterations']} iterations per level (paper 50,000), evaluation every {cfg['eval_every']}, "
             f"{cfg['replicates']} replicates (paper 5), {cfg['levels']} levels at {cfg['prune_fraction']:.0%} per level "
             f"(output {cfg['output_fraction']:.0%}; paper 20% / 10%), controls reinit + random-mask at levels "
             f"{cfg['control_levels'] or 'all'}, LMC at levels {cfg['lmc_levels']}. Adam 1.2e-3, batch 60, Glorot init, "
             f"global magnitude pruning, rewind to init. Run as sweep `{res.id}` (experiment `{trial['run_id']}`), "
             f"replicates batched: {'yes' if res.spec.batch_replicates else 'no'}. "
             f"This invocation: {wall / 60:.1f} min wall on a 2-core machine shared with ~8 other jobs.", "",
             "## Time", "",
             f"Measured rate: **{1000 * t['seconds_per_iteration']:.2f} ms per training iteration** (evaluation of "
             f"5K validation + 10K test examples every {cfg['eval_every']} included), over "
             f"{sum(t['per_level_iterations'].values()):,} iterations. The paper protocol is "
             f"{t['full_protocol_trainings']} trainings x 50,000 iterations = {t['full_protocol_iterations']:,} "
             f"iterations: **{t['full_protocol_hours_at_this_rate']:.1f} h at this rate** in one process; two processes "
             f"(one per core, not measured) could at best halve that to {t['full_protocol_hours_at_this_rate'] / 2:.1f} h. "
             f"Target <= 1 h on 2 cores: {'met' if t['full_protocol_hours_at_this_rate'] / 2 <= 1 else 'MISSED'}.", "", "| level | wall seconds (all replicates, branches) | iterations |",
             "|---|---|---|"]
    lines += [f"| {lv} | {t['per_level_seconds'][lv]:.1f} | {t['per_level_iterations'][lv]:,} |"
              for lv in sorted(t["per_level_seconds"], key=int)]
    lines += ["", "## Targets (paper shape) vs measured", "", "| check | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {c['check']} | {c['target']} | {c['measured']} | {'yes' if c['met'] else 'NO'} |" for c in verdict]
    lines += ["", "## The paper's figures (Frankle & Carbin 2019, MNIST) next to these", "", "| paper | value |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in PAPER_CLAIMS]
    lines += ["", "## Levels (mean ± std over replicates; es = early stop at minimum validation loss)", "",
              level_table(summary), "", "## Linear mode connectivity", "", lmc_table(summary), "", "## Figures", ""]
    lines += [f"![{p.stem}]({p.name})" for p in figs]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
