"""``netpress quantize``: k-means weight sharing, uniform, PTQ, QAT, binary/ternary or mixed precision.

Examples:
    netpress quantize --model lenet300 --data fashion-mnist --from RUN --method kmeans --bits 5 --init linear --finetune 2ep --json
    netpress quantize --method uniform --bits 4 --granularity channel --calibration mse
    netpress quantize --method ptq --w 8 --a 8
"""
from __future__ import annotations

import argparse
import dataclasses
import copy

from netpress.cli import common
from netpress.errors import ConfigError

METHODS = ("kmeans", "uniform", "ptq", "qat", "binary", "ternary", "mixed")


def add_parser(sub) -> None:
    p = sub.add_parser("quantize", help="quantize / share the weights of a trained model")
    p.add_argument("--model", default="lenet300", help="model name (default: lenet300)")
    p.add_argument("--model-init", default=None, help="weight initialiser of the dense model it trains by default")
    common.add_data_options(p)
    common.add_training_options(p)
    common.add_from_option(p)
    p.add_argument("--method", default="kmeans", help=f"one of {', '.join(METHODS)}")
    p.add_argument("--bits", type=int, default=5, help="bits per weight (kmeans, uniform, qat), 1-16")
    p.add_argument("--init", default="linear", help="k-means centroid init: linear, forgy, density")
    p.add_argument("--finetune", default=None, metavar="STEPS",
                   help="fine-tune after quantizing, e.g. 2ep (kmeans: centroids; qat/binary/ternary: training length)")
    p.add_argument("--finetune-lr", type=float, default=None, help="fine-tuning learning rate")
    p.add_argument("--granularity", default="tensor", help="uniform: tensor, channel or group")
    p.add_argument("--axis", type=int, default=0, help="uniform: channel / group axis")
    p.add_argument("--group-size", type=int, default=0, help="uniform: group size along --axis")
    p.add_argument("--calibration", default="minmax", help="minmax, percentile, mse, aciq_laplace, aciq_gaussian")
    p.add_argument("--asymmetric", action="store_true", help="uniform: asymmetric (affine) range")
    p.add_argument("--w", dest="w_bits", type=int, default=8, help="ptq/qat: weight bits")
    p.add_argument("--a", dest="a_bits", type=int, default=8, help="ptq/qat: activation bits (0 = float)")
    p.add_argument("--a-mode", default="static", help="ptq: static or dynamic activation ranges")
    p.add_argument("--bias-correction", action="store_true", help="ptq: correct the biases")
    p.add_argument("--lsq", action="store_true", help="qat: learn the scales (LSQ)")
    p.add_argument("--budget-bytes", type=float, default=None, help="mixed: size budget of the quantized weights")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME", help="tensor to leave in float (repeatable)")
    p.add_argument("--select", action="append", default=[], metavar="SPEC",
                   help="tensors to quantize (repeatable): a type (Linear, Embedding, Conv*), a glob, re:REGEX, "
                        "!PATTERN to exclude, numel>=N; default: Linear, Conv and Embedding weights")
    p.add_argument("--out", default=None, help="save the exported codes here (torch.save of {name: Codes fields})")
    common.add_run_options(p)
    common.add_json(p)
    p.set_defaults(func=run)


def plan(args) -> dict:
    """Check every option before any training; returns the parsed pieces."""
    from netpress.quantize import FinetuneHparams, PTQHparams, QATHparams, SharingHparams, UniformSpec
    from netpress.quantize.base import check_bits

    if args.method not in METHODS:
        raise ConfigError(f"unknown method {args.method!r}; known: {', '.join(METHODS)}")
    out = {}
    if args.method == "kmeans":
        out["sharing"] = SharingHparams(bits=check_bits(args.bits), init=args.init)
    if args.method == "uniform":
        out["spec"] = UniformSpec(bits=check_bits(args.bits), symmetric=not args.asymmetric, granularity=args.granularity,
                                  axis=args.axis, group_size=args.group_size, calibration=args.calibration)
    if args.method == "ptq":
        out["ptq"] = PTQHparams(w_bits=args.w_bits, a_bits=args.a_bits, w_calibration=args.calibration,
                                a_mode=args.a_mode, bias_correction=args.bias_correction)
    if args.method == "qat":
        out["qat"] = QATHparams(w_bits=args.w_bits, a_bits=args.a_bits, calibration=args.calibration, lsq=args.lsq)
    if args.method == "mixed" and (args.budget_bytes is None or args.budget_bytes <= 0):
        raise ConfigError("--method mixed needs --budget-bytes > 0")
    if args.finetune:
        lr = args.finetune_lr or (1e-4 if args.method == "kmeans" else 1e-3)
        out["finetune"] = FinetuneHparams(steps=args.finetune, lr=lr)
    if args.select or args.exclude:
        _check_selection(args)
    return out


def _check_selection(args) -> None:
    """Resolve ``--select`` / ``--exclude`` on the model's structure (untrained) before any training."""
    from netpress.quantize.base import selected_tensors

    if getattr(args, "from_run", None):
        from netpress.runs import load_run_model, resolve_run

        model = load_run_model(resolve_run(args.from_run, args.runs_dir))
    else:
        from netpress.data import load_data
        from netpress.models import build_model

        data = load_data(common.data_hparams(args), args.data_dir)
        model = build_model(common.model_hparams(_model_args(args)), data.input_shape, data.num_classes)
    selected_tensors(model, args.select or None, args.exclude)


def _model_args(args) -> argparse.Namespace:
    from netpress.models import ModelHparams

    ns = copy.copy(args)
    ns.init = args.model_init or ModelHparams.init
    return ns


def run(args) -> int:
    import torch

    from netpress.quantize import export_codes
    from netpress.train import evaluate

    parsed = plan(args)
    base = common.trained_model(_model_args(args))
    model, data = copy.deepcopy(base.model), base.data
    float_acc = evaluate(model, data.test).accuracy
    extra = quantize_model(args, parsed, model, data)
    acc = evaluate(model, data.test).accuracy
    codes = export_codes(model)
    rows = [_row(name, c) for name, c in codes.items()]
    total = sum(r["bytes"] for r in rows)
    float_bytes = sum(r["params"] * 4 for r in rows)
    out = {"run": base.id, "method": args.method, "float_accuracy": float_acc, "test_accuracy": acc,
           "accuracy_drop": float_acc - acc, "bytes": total, "float_bytes": float_bytes,
           "ratio": float_bytes / max(total, 1), "layers": rows, **extra}
    if args.out:
        torch.save({n: dataclasses.asdict(c) for n, c in codes.items()}, args.out)
        out["path"] = args.out
    human = (common.table(rows, ["layer", "params", "bits", "codebook", "bytes"])
             + f"\n\n{args.method}: float accuracy {float_acc:.4f} -> {acc:.4f}; "
             f"weights {float_bytes:,} -> {total:,.0f} bytes ({out['ratio']:.1f}x, fixed-length indices)")
    common.emit(out, args.json, human)
    return 0


def _row(name: str, c) -> dict:
    """Fixed-length indices plus what the codebook really costs: k floats (k-means); a scale and zero point per
    table (uniform, as the levels follow from them); one scale per channel (binary, ternary)."""
    params = c.indices.numel()
    if c.affine:  # integer codes with a scale and zero point per channel / group
        return {"layer": name, "params": params, "bits": c.bits, "codebook": 0,
                "bytes": params * c.bits / 8 + 8 * c.scale.numel(), "method": c.method}
    tables = c.codebook.shape[0] if c.codebook.dim() == 2 else 1
    book = {"uniform": 8 * tables, "binary": 4 * tables, "ternary": 4 * tables}.get(c.method, 4 * c.codebook.numel())
    if c.method == "uniform" and c.axis is None and c.codebook.numel() != 2 ** c.bits:
        book = 4 * c.codebook.numel()  # per-group codes carry their distinct values
    return {"layer": name, "params": params, "bits": c.bits, "codebook": c.codebook.numel(),
            "bytes": params * c.bits / 8 + book, "method": c.method}


def quantize_model(args, parsed: dict, model, data) -> dict:
    """Apply the chosen method in place; returns extra result fields."""
    from netpress import quantize as q
    from netpress.train import TrainingHparams, train

    extra = {}
    ft = parsed.get("finetune")
    if args.method == "kmeans":
        sh = parsed["sharing"]
        q.share_weights(model, sh.bits, init=sh.init, names=args.select or None, exclude=args.exclude)
        if ft:
            extra["before_finetune_accuracy"] = _acc(model, data)
            q.finetune_centroids(model, data, ft, device=args.device)
    elif args.method == "uniform":
        q.quantize_weights(model, parsed["spec"], names=args.select or None, exclude=args.exclude)
    elif args.method == "ptq":
        q.ptq(model, data, parsed["ptq"], names=args.select or None, exclude=args.exclude)
    elif args.method == "mixed":
        sens = q.bit_sensitivity(model, data)
        bit_plan = q.allocate_bits(sens, args.budget_bytes)
        q.apply_plan(model, bit_plan)
        extra["plan"] = bit_plan.rows
        print(bit_plan.table(), flush=True) if not args.json else None
    else:
        if args.method == "qat":
            q.prepare_qat(model, parsed["qat"], data, names=args.select or None, exclude=args.exclude)
        else:
            (q.binarize if args.method == "binary" else q.ternarize)(model, names=args.select or None,
                                                                   exclude=args.exclude)
        steps = ft.steps if ft else "1ep"
        lr = ft.lr if ft else 1e-3
        train(model, data, TrainingHparams(optimizer="adam", lr=lr, steps=steps, eval_every=steps), device=args.device)
    return extra


def _acc(model, data) -> float:
    from netpress.train import evaluate

    return evaluate(model, data.test).accuracy
