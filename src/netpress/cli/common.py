"""Options and output shared by every command.

Every command accepts ``--json`` and then prints one JSON object as its last line (snake_case keys, fractions
as fractions). Commands that need a trained model take ``--from RUN`` or train the default dense model,
reusing a stored run with the same hash.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from netpress.data import DataHparams
from netpress.models import ModelHparams
from netpress.train import TrainingHparams


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="fashion-mnist", help="dataset name (default: fashion-mnist)")
    p.add_argument("--data-dir", default=None, help="folder with the data files (else $NETPRESS_DATA, else the Debian package)")
    p.add_argument("--val-size", type=int, default=DataHparams.val_size, help="validation examples carved from train (-1: dataset default, 5000 for (fashion-)mnist)")
    p.add_argument("--train-subset", type=int, default=0, help="use only N training examples (0 = all)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="lenet300", help="model name (default: lenet300)")
    p.add_argument("--init", default=ModelHparams.init, help="weight initialiser")


_TRAINING_HELP = {
    "steps": "training length, e.g. '20ep' or '500it'", "optimizer": "sgd, adam or adamw", "lr": "learning rate",
    "momentum": "SGD momentum", "weight_decay": "weight decay", "batch_size": "batch size",
    "lr_schedule": "constant, cosine, linear or step", "milestones": "for step: e.g. '5ep,8ep'",
    "gamma": "lr factor at each milestone", "warmup": "linear lr warm-up, e.g. '200it'", "seed": "seed",
    "data_order_seed": "data-order seed (-1: same as --seed)", "eval_every": "evaluation and checkpoint interval",
}


def add_training_options(p: argparse.ArgumentParser, prefix: str = "", skip: tuple[str, ...] = ()) -> None:
    """One flag per :class:`TrainingHparams` field (``--lr``, ``--warmup``, ...); ``prefix`` namespaces them
    (e.g. ``retrain-``); ``skip`` leaves out fields the command defines itself."""
    defaults = TrainingHparams()
    for f in dataclasses.fields(TrainingHparams):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        p.add_argument(f"--{prefix}{f.name.replace('_', '-')}", type=type(default), default=None,
                       help=f"{_TRAINING_HELP.get(f.name, f.name)} (default {default!r})")


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", default=None, help="where runs are stored (default $NETPRESS_HOME or ./netpress_runs)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def add_from_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_run", default=None, metavar="RUN",
                   help="start from a trained run (id, id prefix or folder); default: train the dense model")


def training_hparams(args: argparse.Namespace, prefix: str = "", base: TrainingHparams | None = None) -> TrainingHparams:
    """The :class:`TrainingHparams` of ``base`` (default: the defaults) changed by the flags given."""
    base = base or TrainingHparams()
    dest = prefix.replace("-", "_")
    changes = {f.name: getattr(args, dest + f.name) for f in dataclasses.fields(TrainingHparams)
               if getattr(args, dest + f.name, None) is not None}
    return base.replace(**changes)


def data_hparams(args: argparse.Namespace) -> DataHparams:
    return DataHparams(name=args.data, val_size=args.val_size, train_subset=args.train_subset)


def model_hparams(args: argparse.Namespace) -> ModelHparams:
    return ModelHparams(name=args.model, init=args.init)


def trained_model(args: argparse.Namespace):
    """The starting model of a compression command: ``--from RUN``, or the dense default run (reused by hash)."""
    from netpress.data import load_data
    from netpress.runs import TrainedRun, load_run_model, resolve_run, run_hparams, train_run

    if getattr(args, "from_run", None):
        folder = resolve_run(args.from_run, args.runs_dir)
        hp = run_hparams(folder)
        data_hp = DataHparams.from_dict(hp["data"]) if "data" in hp else data_hparams(args)
        data = load_data(data_hp, args.data_dir)
        summary = json.loads((folder / "result.json").read_text()) if (folder / "result.json").exists() else {}
        return TrainedRun(folder.name, folder, load_run_model(folder), summary, data, reused=True)
    return train_run(model_hparams(args), data_hparams(args), training_hparams(args), root=args.runs_dir,
                     data_dir=args.data_dir, device=args.device)


def model_skeleton(args: argparse.Namespace):
    """The starting model's architecture without training (``--from RUN``'s model, or the untrained registry
    model), to validate layer selections before any work."""
    if getattr(args, "from_run", None):
        from netpress.runs import load_run_model, resolve_run

        return load_run_model(resolve_run(args.from_run, args.runs_dir))
    from netpress.data import load_data
    from netpress.models import build_model

    data = load_data(data_hparams(args), args.data_dir)
    return build_model(model_hparams(args), data.input_shape, data.num_classes)


def emit(result: dict[str, Any], as_json: bool, human: str | None = None) -> None:
    """Print the human text (if any) and, with ``--json``, the JSON object as the very last line."""
    if human and not as_json:
        print(human)
    if as_json:
        if human:
            print(human, file=sys.stderr)
        print(json.dumps(result, sort_keys=True, default=_jsonable))


def _jsonable(o: Any):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A plain aligned text table."""
    if not rows:
        return "(empty)"
    columns = columns or list(rows[0])
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    return "" if v is None else str(v)
