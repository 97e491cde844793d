"""``netpress prune``: prune a trained model (unstructured with a schedule, or structured with surgery).

``--control scratch`` adds the "rethinking the value of pruning" control (Liu et al. 2019): the pruned
architecture / masks trained from a fresh init with the dense run's schedule (Scratch-E), next to the
pruned-and-retrained model.
"""
from __future__ import annotations

from netpress.cli import common
from netpress.errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser("prune", help="prune a trained model: any score, scope and schedule; or structured surgery")
    common.add_model_options(p)
    common.add_data_options(p)
    common.add_training_options(p)
    common.add_from_option(p)
    p.add_argument("--sparsity", type=float, required=True, help="target fraction of zeros in [0, 1), e.g. 0.92 "
                   "(with --structured: fraction of neurons/filters removed per layer group)")
    p.add_argument("--score", default="magnitude", help="magnitude, random, gradient, taylor, snip, l1, l2, activation, apoz")
    p.add_argument("--scope", default="global", help="global or local")
    p.add_argument("--schedule", default="oneshot", help="oneshot, iterative:N or agp")
    p.add_argument("--layer-sparsity", action="append", default=[], metavar="NAME=F",
                   help="own rate for a tensor, e.g. fc_out.weight=0.46 (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME", help="tensor to leave alone (repeatable)")
    p.add_argument("--allow-collapse", action="store_true", help="let global pruning empty a whole layer")
    p.add_argument("--structured", action="store_true", help="remove whole neurons/filters and thin the model (surgery)")
    p.add_argument("--retrain-mode", default="finetune", help="finetune, lr-rewind or weight-rewind")
    common.add_training_options(p, prefix="retrain-")
    p.add_argument("--control", default="",
                   help="scratch: also train the pruned architecture/masks from a fresh init with the dense run's "
                        "schedule (rethinking control) and report both accuracies")
    p.add_argument("--out", default=None, help="save the pruned (or thinned) model here as .safetensors")
    common.add_run_options(p)
    common.add_json(p)
    p.set_defaults(func=run)


def parse_layer_sparsity(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ConfigError(f"--layer-sparsity expects NAME=FRACTION, got {item!r}")
    return out


def hparams(args) -> "PruneHparams":
    """The options as a validated :class:`~netpress.prune.api.PruneHparams`."""
    from netpress.prune.api import PruneHparams

    return PruneHparams(sparsity=args.sparsity, score=args.score, scope=args.scope, schedule=args.schedule,
                        layer_sparsity=parse_layer_sparsity(args.layer_sparsity), exclude=tuple(args.exclude),
                        allow_collapse=args.allow_collapse, structured=args.structured, retrain_mode=args.retrain_mode)


def run(args) -> int:
    import copy

    from netpress.prune import plain_state_dict, sparsity
    from netpress.prune.accounting import account
    from netpress.prune.api import check_prune, prune_model
    from netpress.runs import load_run_model
    from netpress.train import evaluate

    hp = hparams(args)
    if args.control not in ("", "scratch"):
        raise ConfigError(f"unknown --control {args.control!r}; known: scratch")
    retrain_hp = _retrain_hp(args, hp)
    check_prune(common.architecture(args), hp)
    base = common.trained_model(args)
    model, data = copy.deepcopy(base.model), base.data
    dense_acc = evaluate(model, data.test, device=None).accuracy
    rewind = (plain_state_dict(load_run_model(base.path, "init.pt"))
              if hp.schedule_hparams().retrain == "weight-rewind" else None)
    result = prune_model(model, data, hp, retrain_hp=retrain_hp, rewind_state=rewind, device=args.device)
    model = result.pop("model")
    if args.control == "scratch":
        result.update(_scratch_control(args, base, model, data))
    rows, total = account(model, data.input_shape)
    acc = evaluate(model, data.test).accuracy
    out = {"run": base.id, "dense_accuracy": dense_acc, "test_accuracy": acc, "accuracy_drop": dense_acc - acc,
           "sparsity": sparsity(model) if not args.structured else total["sparsity"], "params": total["params"],
           "nonzeros": total["nonzeros"], "flops_dense": total["flops_dense"], "flops_effective": total["flops_effective"],
           "layers": rows, **result}
    if args.out:
        from netpress.prune.surgery import save_thinned
        out["path"] = str(save_thinned(model, args.out))
    human = (common.table(rows + [total], ["layer", "shape", "params", "nonzeros", "sparsity", "flops_dense", "flops_effective"])
             + f"\n\ndense accuracy {dense_acc:.4f} -> pruned {acc:.4f} (sparsity {out['sparsity']:.4f})"
             + (f"; trained from scratch {out['scratch_test_accuracy']:.4f} ({out['scratch_steps']})"
                if args.control else ""))
    common.emit(out, args.json, human)
    return 0


def _scratch_control(args, base, pruned, data) -> dict:
    """Train ``pruned``'s architecture/masks from a fresh init with the dense run's recorded schedule."""
    from netpress.lottery.rethinking import train_from_scratch
    from netpress.runs import run_hparams
    from netpress.train import TrainingHparams

    recorded = run_hparams(base.path).get("training")
    hp = TrainingHparams.from_dict(recorded) if isinstance(recorded, dict) else common.training_hparams(args)
    _, result = train_from_scratch(pruned, data, hp, seed=hp.seed + 1, device=args.device)
    return {"scratch_test_accuracy": result.final_test_accuracy, "scratch_steps": hp.steps}


def _retrain_hp(args, hp):
    """The ``--retrain-*`` settings (default 2ep at lr 0.005) when given or when the schedule retrains."""
    from netpress.train import TrainingHparams

    given = common.training_hparams(args, prefix="retrain-", base=TrainingHparams(lr=0.005, steps="2ep"))
    wants = any(getattr(args, f"retrain_{k}") is not None for k in ("steps", "lr", "optimizer"))
    return given if (wants or hp.wants_retraining()) else None
