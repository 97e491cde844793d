"""``netpress sensitivity``: prune each layer alone over a sparsity grid (no retraining); table, PNG, JSON."""
from __future__ import annotations

from netpress.cli import common
from netpress.errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser("sensitivity", help="per-layer pruning sensitivity of a trained model (Han-style plot)")
    common.add_model_options(p)
    common.add_data_options(p)
    common.add_training_options(p)
    common.add_from_option(p)
    p.add_argument("--grid", default="0,0.25,0.5,0.7,0.8,0.9,0.95,0.98", help="comma-separated sparsities in [0, 1)")
    p.add_argument("--score", default="magnitude", help="weight score (default magnitude)")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME", help="tensor to skip (repeatable)")
    p.add_argument("--plot", default=None, help="write the sensitivity plot (PNG) here")
    common.add_run_options(p)
    common.add_json(p)
    p.set_defaults(func=run)


def parse_grid(text: str) -> list[float]:
    from netpress.prune import check_fraction

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--grid expects comma-separated fractions, got {text!r}") from None
    if not values:
        raise ConfigError("--grid is empty")
    return [check_fraction(v) for v in values]


def run(args) -> int:
    from netpress.prune import resolve_score
    from netpress.prune.sensitivity import sensitivity

    grid = parse_grid(args.grid)
    resolve_score(args.score)
    base = common.trained_model(args)
    rows = sensitivity(base.model, base.data, grid, score=args.score, exclude=args.exclude)
    out = {"run": base.id, "rows": rows}
    if args.plot:
        from netpress.report.pruning import plot_sensitivity
        out["plot"] = str(plot_sensitivity(rows, args.plot))
    common.emit(out, args.json, common.table(rows, ["layer", "sparsity", "accuracy", "loss"]))
    return 0
