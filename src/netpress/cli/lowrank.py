"""``netpress lowrank``: factorize a trained model's layers by truncated SVD, report, optionally fine-tune."""
from __future__ import annotations

from netpress.cli import common


def add_parser(sub) -> None:
    p = sub.add_parser("lowrank", help="low-rank (truncated SVD) factorization of Linear/Conv2d layers")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--energy", type=float, default=None, help="keep this fraction of squared singular values per layer (default 0.95)")
    sel.add_argument("--ratio", type=float, default=None, help="per-layer compression rate mn/k(m+n+1)")
    sel.add_argument("--budget", type=int, default=None, help="total weights of the factorized layers")
    sel.add_argument("--rank", type=int, default=None, help="the same rank for every selected layer")
    p.add_argument("--layers", default="linear", help="linear, conv, all, or comma-separated module names")
    p.add_argument("--keep-unprofitable", action="store_true",
                   help="factorize a layer even when that does not reduce its weights")
    p.add_argument("--finetune", default="0ep", help="fine-tuning length after factorization, e.g. '2ep'")
    p.add_argument("--finetune-lr", type=float, default=0.01, help="fine-tuning learning rate (default 0.01)")
    p.add_argument("--spectrum", default=None, metavar="PNG", help="write the singular-value plot here")
    common.add_model_options(p)
    common.add_data_options(p)
    common.add_training_options(p)
    common.add_from_option(p)
    common.add_run_options(p)
    common.add_json(p)
    p.set_defaults(func=run)


def lowrank_hparams(args):
    from netpress.lowrank import LowRankHparams

    chosen = {k: getattr(args, k) for k in ("energy", "ratio", "budget", "rank") if getattr(args, k) is not None}
    return LowRankHparams(**(chosen or {"energy": 0.95}), layers=args.layers,
                          skip_unprofitable=not args.keep_unprofitable, finetune=args.finetune)


def run(args) -> int:
    from netpress.lowrank import low_rank
    from netpress.train import TrainingHparams, evaluate

    hp = lowrank_hparams(args)  # bad values fail here, before any training
    ft_hp = TrainingHparams(lr=args.finetune_lr, lr_schedule="cosine", steps="1ep")
    base = common.trained_model(args)
    dense_acc = evaluate(base.model, base.data.test).accuracy
    res = low_rank(base.model, hp, data=base.data, train_hp=ft_hp, spectrum_png=args.spectrum, device=args.device)
    s = res.summary()
    final = res.finetune.final_test_accuracy if res.finetune else res.factorized_test_accuracy
    out = {"run": base.id, **s, "dense_test_accuracy": dense_acc, "test_accuracy": final}
    rows = [{k: r[k] for k in ("name", "rank", "max_rank", "energy_kept", "relative_error", "params_before",
                               "params_after")} for r in s["layers"]]
    human = (common.table(rows) + f"\nparameters {s['params_before']:,} -> {s['params_after']:,} "
             f"({s['ratio']:.2f}x); test accuracy {dense_acc:.4f} -> {res.factorized_test_accuracy:.4f} factorized"
             + (f" -> {final:.4f} fine-tuned" if res.finetune else ""))
    common.emit(out, args.json, human)
    return 0
