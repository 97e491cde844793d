"""``netpress compress``: Deep Compression (or any recipe) from a trained run to a ``.netp`` file and a report."""
from __future__ import annotations

from pathlib import Path

from netpress.cli import common


def add_parser(sub) -> None:
    p = sub.add_parser("compress", help="run a compression recipe (default: deep-compression) and write a .netp file")
    common.add_model_options(p)
    common.add_data_options(p)
    common.add_training_options(p)
    common.add_run_options(p)
    common.add_from_option(p)
    p.add_argument("--recipe", default=None,
                   help="built-in recipe (deep-compression, prune-only, quantize-only, max; with --hf: pretrained-8bit, "
                        "pretrained-4bit, pretrained-balanced, pretrained-max) or a YAML file (default: deep-compression / pretrained-4bit)")
    p.add_argument("--out", default=None, help="output .netp file (default: <model>.netp)")
    p.add_argument("--report", default=None, help="report folder (default: <out without .netp>_report)")
    p.add_argument("--hf", default=None, metavar="DIR",
                   help="compress a Hugging Face / sentence-transformers model folder one-shot (offline; needs "
                        "--calib and a pretrained recipe: pretrained-8bit, pretrained-4bit, pretrained-balanced, pretrained-max)")
    p.add_argument("--calib", default=None, metavar="FILE", help="with --hf: calibration sentences, one per line")
    p.add_argument("--calib-limit", type=int, default=512, help="with --hf: most calibration sentences (default 512)")
    p.add_argument("--eval-text", default=None, metavar="FILE",
                   help="with --hf: held-out sentences for the reported quality (default: the calibration ones)")
    common.add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.hf is not None:
        return run_hf(args)
    from netpress.pipeline import compress_run, load_recipe
    from netpress.report.compression import layer_table, stage_table

    from netpress.pipeline.recipe import check_layer_keys

    recipe = load_recipe(args.recipe or "deep-compression")  # validated before any training
    check_layer_keys(recipe, common.architecture(args))  # per-layer keys must name layers of this model
    start = common.trained_model(args)
    name = getattr(start.model, "netpress_spec", {}).get("name", args.model)  # --from RUN: the run's model
    out = Path(args.out or f"{name}.netp")
    result = compress_run(start, recipe, out=out, report_dir=args.report, root=args.runs_dir, device=args.device)
    workdir = result.folder
    summary = {**result.summary(), "recipe": recipe.name, "run": start.id, "workdir": str(workdir),
               "report": str(result.report), "stages": result.rows, "layers": result.layers}
    human = "\n".join([
        f"{recipe.name}: {name} on {start.data.name} (from run {start.id})", "", stage_table(result.rows), "",
        layer_table(result.layers), "",
        f"wrote {out} ({result.rows[-1]['bytes']:,} bytes, {result.rows[-1]['ratio']:.1f}x smaller than fp32) "
        f"and {result.report}",
        f"next: netpress inspect {out}    netpress evaluate {out} --data {start.data.name}",
    ])
    common.emit(summary, args.json, human)
    return 0


def run_hf(args) -> int:
    """``--hf DIR --calib FILE``: one-shot compression of a pretrained folder (netpress.pipeline.oneshot)."""
    from netpress.errors import ConfigError
    from netpress.pipeline.oneshot import compress_hf

    if args.calib is None:
        raise ConfigError("--hf needs --calib FILE (calibration sentences, one per line)")
    recipe = args.recipe or "pretrained-4bit"
    out = Path(args.out or f"{Path(args.hf).resolve().name}.netp")
    result = compress_hf(args.hf, args.calib, recipe, out=out, calib_limit=args.calib_limit,
                         eval_file=args.eval_text, report=args.report)
    summary = {**result.summary(), "recipe": recipe, "hf": args.hf, "report": str(result.report),
               "stages": result.rows}
    s = result.summary()
    human = "\n".join([
        common.table(result.rows), "",
        f"wrote {out} ({s['bytes']:,} bytes, {s['ratio']:.1f}x smaller than fp32, embedding cosine mean "
        f"{s['cosine_mean']:.4f} min {s['cosine_min']:.4f}) and {result.report}",
        f"next: netpress inspect {out}    netpress evaluate {out} --hf {args.hf} --text {args.calib}",
    ])
    common.emit(summary, args.json, human)
    return 0
