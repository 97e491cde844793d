"""``netpress lottery``: a lottery-ticket experiment (IMP levels, rewinding, controls, LMC) as a resumable run;
``netpress lottery report RUN``: its plots and Markdown table.

Example:
    netpress lottery --model lenet300 --data fashion-mnist --levels 15 --rewind 0it \
        --controls reinit,random-mask --replicates 2 --json
    netpress lottery --controls reinit,scratch,finetuned --early-bird --early-bird-every 200it
    netpress lottery report lottery_1a2b3c
"""
from __future__ import annotations

import sys
from pathlib import Path

from netpress.cli import common
from netpress.errors import ConfigError
from netpress.lottery.hparams import CONTROLS, LotteryHparams, lottery_training_defaults


def add_parser(sub) -> None:
    d, t = LotteryHparams(), lottery_training_defaults()
    p = sub.add_parser("lottery", help="lottery tickets: iterative magnitude pruning with rewinding and controls",
                       description=f"Training defaults are Frankle & Carbin's: {t.optimizer} lr {t.lr}, batch "
                                   f"{t.batch_size}, constant lr, {t.steps} per level. `netpress lottery report RUN` "
                                   f"writes the plots and table of a finished experiment.")
    p.add_argument("action", nargs="*", metavar="report RUN", help="'report RUN' to report a stored experiment")
    p.add_argument("--levels", type=int, default=d.levels, help=f"pruning levels after the dense one (default {d.levels})")
    p.add_argument("--prune-fraction", type=float, default=d.prune_fraction, help="fraction of remaining weights pruned per level")
    p.add_argument("--output-fraction", type=float, default=d.output_fraction, help="per-level fraction for the output layer")
    p.add_argument("--scope", default=d.scope, help="global or local magnitude ranking")
    p.add_argument("--rewind", default=d.rewind, help="0it, 500it, 2ep (iteration rewinding), lr (learning-rate rewinding) or finetune")
    p.add_argument("--controls", default=d.controls, help=f"comma-separated of {', '.join(CONTROLS)} ('' for none)")
    p.add_argument("--control-levels", default=d.control_levels, help="levels that get the controls, e.g. '4,8,15' (default: all)")
    p.add_argument("--replicates", type=int, default=d.replicates, help="independent seeds")
    p.add_argument("--lmc-levels", default=d.lmc_levels, help="levels to analyse for linear mode connectivity, e.g. '0,5,10'")
    p.add_argument("--lmc-rewinds", default=d.lmc_rewinds, help="points the two LMC copies start from (default: --rewind)")
    p.add_argument("--lmc-points", type=int, default=d.lmc_points, help="points on the interpolation line")
    p.add_argument("--early-bird", action="store_true",
                   help="also search the Early-Bird ticket at the last level's sparsity (mask distance between "
                        "observations), retrain it and compare it with the IMP ticket")
    p.add_argument("--early-bird-every", default=d.early_bird_every, help="early-bird: observation interval (1ep, 200it)")
    p.add_argument("--early-bird-window", type=int, default=d.early_bird_window,
                   help="early-bird: consecutive distances that must stay below --early-bird-eps")
    p.add_argument("--early-bird-eps", type=float, default=d.early_bird_eps,
                   help="early-bird: mask-distance threshold (fraction of weights, in (0, 1])")
    p.add_argument("--eval-every", default=t.eval_every, help="evaluation interval (sets the early-stopping resolution)")
    p.add_argument("--batch-replicates", action="store_true",
                   help="train each level's stages of all replicates together (stacked parameters; same numbers)")
    p.add_argument("--out", default=None, help="report folder (default: the experiment folder)")
    common.add_model_options(p)
    common.add_data_options(p)
    common.add_training_options(p, skip=("eval_every",))
    common.add_run_options(p)
    common.add_json(p)
    p.set_defaults(func=run, out_kind="folder")


def run(args) -> int:
    if args.action and args.action[0] == "report" and len(args.action) == 2:
        return report(args, args.action[1])
    if args.action:
        raise ConfigError(f"unexpected arguments {' '.join(args.action)!r}; use `netpress lottery report RUN`")
    return experiment(args)


def lottery_hparams(args) -> LotteryHparams:
    return LotteryHparams(levels=args.levels, prune_fraction=args.prune_fraction, output_fraction=args.output_fraction,
                          scope=args.scope, rewind=args.rewind, controls=args.controls, control_levels=args.control_levels, replicates=args.replicates,
                          lmc_levels=args.lmc_levels, lmc_rewinds=args.lmc_rewinds, lmc_points=args.lmc_points,
                          early_bird=args.early_bird, early_bird_every=args.early_bird_every,
                          early_bird_window=args.early_bird_window, early_bird_eps=args.early_bird_eps)


def experiment(args) -> int:
    from netpress.lottery import run_lottery

    hp = lottery_hparams(args)
    train_hp = common.training_hparams(args, base=lottery_training_defaults()).replace(eval_every=args.eval_every)
    res = run_lottery(common.model_hparams(args), common.data_hparams(args), train_hp, hp, root=args.runs_dir,
                      data_dir=args.data_dir, device=args.device, on_stage=None if args.json else _print_stage,
                      batch_replicates=args.batch_replicates)
    files = _write_report(res.summary, Path(args.out) if args.out else res.path)
    out = {"run": res.id, "path": str(res.path), "levels": _level_rows(res.summary), "lmc": _lmc_rows(res.summary),
           "report": str(files["report"])}
    if res.early_bird:
        out["early_bird"] = _early_bird_rows(res.early_bird)
    eb = _early_bird_text(out["early_bird"]) if res.early_bird else ""
    common.emit(out, args.json, f"experiment {res.id} at {res.path}\n" + common.table(out["levels"]) + eb +
                f"\nreport: {files['report']}")
    return 0


def report(args, ref: str) -> int:
    from netpress.runs import read_json, resolve_run

    folder = resolve_run(ref, args.runs_dir)
    results = folder / "results.json"
    if not results.exists():
        raise ConfigError(f"{folder} has no results.json (not a finished lottery experiment; re-run it to finish)")
    summary = read_json(results).get("summary")
    if not isinstance(summary, dict):
        raise ConfigError(f"{results} has no 'summary' mapping")
    files = _write_report(summary, Path(args.out) if args.out else folder)
    out = {"run": folder.name, "report": str(files["report"]), "figures": [str(f) for f in files["figures"]],
           "levels": _level_rows(summary), "lmc": _lmc_rows(summary)}
    common.emit(out, args.json, common.table(out["levels"]) + f"\nreport: {files['report']}")
    return 0


def _write_report(summary: dict, folder: Path) -> dict:
    from netpress.fileio import atomic_write_text
    from netpress.report.lottery import write_report

    files = write_report(summary, folder, stem="lottery", title=f"Lottery experiment {folder.name}")
    path = folder / "report.md"
    atomic_write_text(path, files["markdown"])
    return {"report": path, "figures": files["figures"]}


def _level_rows(summary: dict) -> list[dict]:
    rows = []
    for lv in summary["levels"]:
        for branch in (b for b in summary["branches"] if b in lv["branches"]):
            s = lv["branches"][branch]
            rows.append({"level": lv["level"], "branch": branch, "remaining": s["remaining"]["mean"],
                         "test_accuracy": s["test_accuracy"]["mean"],
                         "early_stop_test_accuracy": s["early_stop_test_accuracy"]["mean"],
                         "early_stop_iteration": s["early_stop_iteration"]["mean"], "replicates": s["test_accuracy"]["n"]})
    return rows


def _early_bird_rows(runs: list[dict]) -> list[dict]:
    """One row per replicate: detection, both tickets' accuracy and cost; the mask-distance curve last."""
    keys = ("replicate", "remaining", "detected_iteration", "detected_epoch", "test_accuracy", "imp_test_accuracy",
            "iterations", "imp_iterations", "iteration_ratio", "distances")
    return [{k: r[k] for k in keys} for r in runs]


def _early_bird_text(rows: list[dict]) -> str:
    curves = "\n".join(f"rep {r['replicate']} mask distances: " + ", ".join(f"{d:.3f}" for d in r["distances"])
                       for r in rows)
    return "\nearly-bird ticket vs IMP ticket:\n" + common.table(rows, list(rows[0])[:-1]) + "\n" + curves


def _lmc_rows(summary: dict) -> list[dict]:
    return [{"level": e["level"], "rewind": e["rewind"], "remaining": e["remaining"], "barrier": e["barrier"]["mean"]}
            for e in summary["lmc"]]


def _print_stage(row: dict) -> None:
    print(f"rep {row['replicate']} level {row['level']} {row['branch']}: {100 * row['remaining']:.2f}% weights, "
          f"test accuracy {row['test_accuracy']:.4f}, early stop at it {row['early_stop_iteration']}",
          file=sys.stderr, flush=True)
