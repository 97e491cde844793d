"""``netpress train``: train a registry model on a dataset as a stored, resumable run."""
from __future__ import annotations

from netpress.cli import common


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (resumes or reuses a stored run with the same settings)")
    common.add_model_options(p)
    common.add_data_options(p)
    common.add_training_options(p)
    common.add_run_options(p)
    common.add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from netpress.runs import train_run

    run = train_run(common.model_hparams(args), common.data_hparams(args), common.training_hparams(args),
                    root=args.runs_dir, data_dir=args.data_dir, device=args.device)
    params = sum(p.numel() for p in run.model.parameters())
    s = run.summary
    human = (f"run {run.id} ({'reused' if run.reused else 'trained'}) at {run.path}\n"
             f"  model {args.model}, {params:,} parameters, data {args.data}\n"
             f"  test accuracy {s['test_accuracy']:.4f}; early-stopping iteration {s['early_stop_iteration']} "
             f"(test accuracy there {s['early_stop_test_accuracy']:.4f})")
    common.emit({"run": run.id, "path": str(run.path), "reused": run.reused, "parameters": params, **s}, args.json, human)
    return 0
