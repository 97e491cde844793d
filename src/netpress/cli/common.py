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
from netpress.textfmt import table  # noqa: F401  (re-exported for the commands)
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
    from netpress.runs import load_trained_run, train_run

    if getattr(args, "from_run", None):
        return load_trained_run(args.from_run, args.runs_dir, args.data_dir, data_hparams(args))
    return train_run(model_hparams(args), data_hparams(args), training_hparams(args), root=args.runs_dir,
                     data_dir=args.data_dir, device=args.device)


def architecture(args: argparse.Namespace):
    """The model options are checked against before any training: the ``--from`` run's model, or an untrained
    registry model of the requested architecture."""
    from netpress.data import load_data
    from netpress.models import build_model
    from netpress.runs import load_run_model, resolve_run

    if getattr(args, "from_run", None):
        return load_run_model(resolve_run(args.from_run, args.runs_dir))
    data = load_data(data_hparams(args), args.data_dir)
    return build_model(model_hparams(args), data.input_shape, data.num_classes, seed=0)


def preflight(args: argparse.Namespace) -> None:
    """Checks every command gets before any work: device, data folder, output paths, then the runs folder.

    A command whose ``--out`` is a folder sets ``out_kind='folder'`` in its defaults.
    """
    from netpress.data import check_data_dir
    from netpress.fileio import check_out_path
    from netpress.runs import Store, runs_root
    from netpress.train import resolve_device

    if getattr(args, "device", None) is not None:
        resolve_device(args.device)
    check_data_dir(getattr(args, "data_dir", None))
    if getattr(args, "out", None):
        check_out_path(args.out, folder=getattr(args, "out_kind", "file") == "folder")
    if getattr(args, "report", None):
        check_out_path(args.report, folder=True, what="--report")
    if getattr(args, "spectrum", None):
        check_out_path(args.spectrum, what="--spectrum")
    if hasattr(args, "runs_dir"):
        Store(runs_root(args.runs_dir))


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
