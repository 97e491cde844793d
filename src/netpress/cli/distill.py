"""``netpress distill``: train a registry student model on a stored teacher run's outputs."""
from __future__ import annotations

from netpress.cli import common


def add_parser(sub) -> None:
    p = sub.add_parser("distill", help="train a small student model from a trained teacher run (knowledge distillation)")
    p.add_argument("--teacher", required=True, metavar="RUN", help="teacher run (id, id prefix or folder)")
    p.add_argument("--student", default="lenet300", help="student model name (default: lenet300)")
    p.add_argument("--init", default="kaiming_normal", help="student weight initialiser")
    p.add_argument("--temperature", type=float, default=4.0, help="softmax temperature T > 0 (default 4)")
    p.add_argument("--alpha", type=float, default=0.1, help="weight of the hard-label loss in [0, 1] (default 0.1)")
    p.add_argument("--mode", default="kd", help="kd (soft targets, KL) or logits (MSE of logits) (default kd)")
    p.add_argument("--cache", default="auto", help="teacher outputs: auto, always (cache once) or never (on the fly)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the student as a run folder (model.pt, hparams.json, result.json) usable with --from")
    common.add_data_options(p)
    common.add_training_options(p)
    common.add_run_options(p)
    common.add_json(p)
    p.set_defaults(func=run, out_kind="folder")


def run(args) -> int:
    from netpress.data import load_data
    from netpress.distill import DistillHparams, distill
    from netpress.models import ModelHparams, build_model
    from netpress.runs import load_run_model, resolve_run, write_run
    from netpress.train import evaluate

    hp = DistillHparams(temperature=args.temperature, alpha=args.alpha, mode=args.mode, cache=args.cache)
    model_hp = ModelHparams(name=args.student, init=args.init)
    train_hp, data_hp = common.training_hparams(args), common.data_hparams(args)
    folder = resolve_run(args.teacher, args.runs_dir)
    teacher = load_run_model(folder)
    data = load_data(data_hp, args.data_dir)
    student = build_model(model_hp, data.input_shape, data.num_classes, seed=train_hp.seed)
    result = distill(student, teacher, data, train_hp, hparams=hp, device=args.device)
    out = {"teacher_run": folder.name, "student": args.student, "temperature": hp.temperature, "alpha": hp.alpha,
           "mode": hp.mode, "student_parameters": _params(student), "teacher_parameters": _params(teacher),
           "teacher_test_accuracy": evaluate(teacher, data.test).accuracy, **result.summary()}
    if args.out:
        parts = {"model": model_hp, "data": data_hp, "training": train_hp, "distill": hp}
        out["path"] = str(write_run(args.out, "distill", parts, student, out, extra={"teacher_run": folder.name}))
    human = (f"student {args.student} ({out['student_parameters']:,} parameters) distilled from {folder.name} "
             f"({out['teacher_parameters']:,} parameters), T={hp.temperature}, alpha={hp.alpha}, mode {hp.mode}\n"
             f"  test accuracy {out['test_accuracy']:.4f} (teacher {out['teacher_test_accuracy']:.4f})")
    common.emit(out, args.json, human)
    return 0


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())
