"""``netpress evaluate model.netp --data fashion-mnist``: test accuracy of the decoded model."""
from __future__ import annotations

from netpress.cli import common, decompress


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="load a .netp file (registry models) and measure its test accuracy")
    p.add_argument("path", help="the .netp file")
    common.add_data_options(p)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    decompress.add_max_elements(p)
    p.add_argument("--hf", default=None, metavar="DIR",
                   help="a file compressed with compress --hf: the original model folder to compare embeddings with")
    p.add_argument("--text", default=None, metavar="FILE", help="with --hf: sentences, one per line")
    p.add_argument("--limit", type=int, default=None, help="with --hf: use at most N sentences")
    common.add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.hf is not None:
        return run_hf(args)
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


def run_hf(args) -> int:
    """``--hf DIR --text FILE``: embedding agreement of the decoded encoder with the original folder."""
    from netpress.errors import ConfigError
    from netpress.hf import evaluate

    if args.text is None:
        raise ConfigError("--hf needs --text FILE (sentences, one per line)")
    result = {"path": args.path, "hf": args.hf, **evaluate(args.path, args.hf, args.text, limit=args.limit)}
    human = (f"{args.path}: embedding cosine vs {args.hf} mean {result['cosine_mean']:.4f} min {result['cosine_min']:.4f}"
             f" on {result['sentences']} sentences" + (f"; nearest-neighbour agreement {result['nn_agreement']:.3f}, "
                                                      f"Spearman {result['spearman']:.4f}" if "spearman" in result else ""))
    common.emit(result, args.json, human)
    return 0
