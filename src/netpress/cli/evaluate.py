"""``netpress evaluate model.netp --data fashion-mnist``: test accuracy of the decoded model."""
from __future__ import annotations

from netpress.cli import common, decompress


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="load a .netp file (registry models) and measure its test accuracy")
    p.add_argument("path", help="the .netp file")
    common.add_data_options(p)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    decompress.add_max_elements(p)
    common.add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import netpress
    from netpress.data import load_data
    from netpress.encode import read_manifest
    from netpress.errors import ConfigError
    from netpress.train import evaluate
    from netpress.train.evaluate import resolve_device

    manifest = read_manifest(args.path)
    model = netpress.load(args.path, max_elements=decompress.max_elements(args))  # validated before reading data
    data = load_data(common.data_hparams(args), args.data_dir)
    spec = manifest["model"]
    if list(spec["input_shape"]) != list(data.input_shape) or spec["num_classes"] != data.num_classes:
        raise ConfigError(f"the model takes inputs of shape {spec['input_shape']} and has {spec['num_classes']} "
                          f"classes; {args.data} has {list(data.input_shape)} and {data.num_classes}")
    model = model.to(resolve_device(args.device))
    res = evaluate(model, data.test)
    saved = (manifest.get("metrics") or {}).get("test_accuracy")
    result = {"path": args.path, "data": args.data, "test_accuracy": res.accuracy, "test_loss": res.loss,
              "examples": res.examples, "saved_test_accuracy": saved, "bytes": manifest["file_bytes"]}
    human = f"{args.path}: test accuracy {res.accuracy:.4f} on {res.examples} {args.data} examples" + (
        f" (recorded at save: {saved:.4f})" if isinstance(saved, float) else "")
    common.emit(result, args.json, human)
    return 0
