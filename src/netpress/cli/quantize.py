"""``netpress quantize``: k-means weight sharing, uniform, PTQ, QAT, binary/ternary or mixed precision.

Examples:
    netpress quantize --model lenet300 --data fashion-mnist --from RUN --method kmeans --bits 5 --init linear --finetune 2ep --json
    netpress quantize --method uniform --bits 4 --granularity channel --calibration mse
    netpress quantize --method ptq --w 8 --a 8
    netpress quantize --method ptq --w 8 --a 8 --zero-shot      # calibrated without data
    netpress quantize --method qat --w 4 --a 0 --quant-noise 0.5 --finetune 2ep
"""
from __future__ import annotations

import argparse
import dataclasses
import copy

from netpress.cli import common
from netpress.quantize.methods import METHODS


def add_parser(sub) -> None:
    p = sub.add_parser("quantize", help="quantize / share the weights of a trained model")
    p.add_argument("--model", default="lenet300", help="model name (default: lenet300)")
    p.add_argument("--model-init", default=None, help="weight initialiser of the dense model it trains by default")
    common.add_data_options(p)
    common.add_training_options(p)
    common.add_from_option(p)
    p.add_argument("--method", default="kmeans", help=f"one of {', '.join(METHODS.names())}")
    p.add_argument("--bits", type=int, default=5,
                   help="bits per weight (kmeans, uniform, ecsq; soft-sharing: 2**bits prior components), 1-16")
    p.add_argument("--init", default="linear", help="k-means centroid init: linear, forgy, density")
    p.add_argument("--finetune", default=None, metavar="STEPS",
                   help="fine-tune after quantizing, e.g. 2ep (kmeans, ecsq: centroids; qat, binary, ternary, soft-sharing: "
                        "training length)")
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
    p.add_argument("--zero-shot", action="store_true",
                   help="ptq: calibrate on inputs synthesized from the model (BatchNorm statistics, or model "
                        "inversion without BatchNorm); no data read for calibration")
    p.add_argument("--quant-noise", type=float, default=0.0, metavar="P",
                   help="qat: Quant-Noise, quantize a random fraction P in (0, 1] of the weights each step")
    p.add_argument("--budget-bytes", type=float, default=None, help="mixed: size budget of the quantized weights")
    p.add_argument("--lam", type=float, default=0.0,
                   help="ecsq: rate weight relative to each tensor's weight variance (0 = k-means; e.g. 0.01)")
    p.add_argument("--tau", type=float, default=5e-3, help="soft-sharing: weight of the mixture prior per example")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME", help="tensor to leave in float (repeatable)")
    p.add_argument("--select", action="append", default=[], metavar="SPEC",
                   help="tensors to quantize (repeatable): a type (Linear, Embedding, Conv*), a glob, re:REGEX, "
                        "!PATTERN to exclude, numel>=N; default: Linear, Conv and Embedding weights")
    p.add_argument("--out", default=None, help="write the quantized model here as a .netp file")
    common.add_run_options(p)
    common.add_json(p)
    p.set_defaults(func=run)


def hparams(args) -> "QuantizeHparams":
    """The options as a validated :class:`~netpress.quantize.QuantizeHparams` (before any training)."""
    from netpress.quantize.methods import QuantizeHparams

    return QuantizeHparams(method=args.method, bits=args.bits, init=args.init, finetune=args.finetune or "",
                           finetune_lr=args.finetune_lr or 0.0, granularity=args.granularity, axis=args.axis,
                           group_size=args.group_size, calibration=args.calibration, asymmetric=args.asymmetric,
                           w_bits=args.w_bits, a_bits=args.a_bits, a_mode=args.a_mode,
                           bias_correction=args.bias_correction, lsq=args.lsq, budget_bytes=args.budget_bytes or 0.0,
                           select=tuple(args.select), exclude=tuple(args.exclude), zero_shot=args.zero_shot,
                           quant_noise=args.quant_noise, lam=args.lam, tau=args.tau)


def _model_args(args) -> argparse.Namespace:
    from netpress.models import ModelHparams

    ns = copy.copy(args)
    ns.init = args.model_init or ModelHparams.init
    return ns


def run(args) -> int:
    import netpress
    from netpress.quantize import export_codes, remove_activation_quantizers
    from netpress.quantize.methods import check_quantize, quantize_model, size_table
    from netpress.train import evaluate

    hp = hparams(args)
    check_quantize(common.architecture(_model_args(args)), hp)
    base = common.trained_model(_model_args(args))
    model, data = copy.deepcopy(base.model), base.data
    float_acc = evaluate(model, data.test).accuracy
    extra = quantize_model(model, hp, data, device=args.device)
    acc = evaluate(model, data.test).accuracy
    rows, total = size_table(export_codes(model))
    out = {"run": base.id, "method": args.method, "float_accuracy": float_acc, "test_accuracy": acc,
           "accuracy_drop": float_acc - acc, "layers": rows, **total, **extra}
    if args.out:  # a .netp holds weights: activation quantizers (ptq, qat) are not stored
        stored = remove_activation_quantizers(copy.deepcopy(model))
        stored_acc = evaluate(stored, data.test).accuracy
        report = netpress.save(stored, args.out, recipe={"quantize": hp.non_default()},
                               metrics={"test_accuracy": stored_acc, "float_accuracy": float_acc})
        out.update(path=str(args.out), file_bytes=report["file_bytes"], file_ratio=report["ratio"],
                   file_test_accuracy=stored_acc)
    human = "\n\n".join(filter(None, [
        common.table(extra["plan"]) if "plan" in extra else None,
        common.table(rows, ["layer", "params", "bits", "codebook", "bytes"]),
        f"{args.method}{' (zero-shot calibration)' if hp.zero_shot else ''}: float accuracy {float_acc:.4f} -> {acc:.4f}; weights {total['float_bytes']:,} -> "
        f"{total['bytes']:,.0f} bytes ({total['ratio']:.1f}x, fixed-length indices)"
        + (f"; wrote {args.out} ({out['file_bytes']:,} bytes)" if args.out else "")]))
    common.emit(out, args.json, human)
    return 0
