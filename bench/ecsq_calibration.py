"""ECSQ with and without GPTQ-style calibration, on the same pruned nets: bytes vs validation / test accuracy.

Reads the pruned, retrained model of ``bench/deep_compression.py --recipes budget@z0`` (its stages 00-02, run that
first) and reruns only the budget recipe's quantize + encode stages on it, at each rate weight ``lam`` alone (no
search), once with ``calibration: 0`` (each weight to its own best level) and once with ``calibration: 4096``
(error feedback + refitted levels from 4,096 training inputs); everything else is the recipe's (2-epoch centroid
fine-tune, 8-bit biases, float16 codebooks, context coder). Bytes are the real ``.netp`` files.

Usage: python bench/ecsq_calibration.py [--models lenet300,lenet5] [--lams 0.1,0.05,0.02,0.01]
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, RUNS, dense_run, write_result  # noqa: E402
from deep_compression import _base_hp, bench_recipe  # noqa: E402

from netpress.pipeline import compress, parse_recipe  # noqa: E402
from netpress.train import evaluate  # noqa: E402

SOURCE = "budget@z0"
REUSED = ("00_distill", "01_prune", "02_train")


def variant(lam: float, calibration: int, qat: dict | None = None):
    """The source recipe with one fixed ``lam``, the given ``calibration`` and (if given) ``qat`` settings."""
    doc = copy.deepcopy(bench_recipe(SOURCE).source)
    for stage in doc["stages"]:
        if "quantize" in stage:
            stage["quantize"].update(lam=lam, calibration=calibration, **({"qat": qat} if qat else {}))
    return parse_recipe(doc, f"{SOURCE}-lam{lam:g}-cal{calibration}{'-qat' if qat else ''}")


def measure(name: str, lam: float, calibration: int, qat: dict | None = None) -> dict:
    dense = dense_run(name)
    source = RUNS / f"compress_{dense.id}_{bench_recipe(SOURCE).digest()}"
    missing = [s for s in REUSED if not (source / s / "done.json").exists()]
    if missing:
        raise SystemExit(f"{source} lacks {missing}: run bench/deep_compression.py --models {name} --recipes {SOURCE}")
    recipe = variant(lam, calibration, qat)
    workdir = RUNS / f"ecsq_calibration_{dense.id}_{recipe.digest()}"
    workdir.mkdir(parents=True, exist_ok=True)
    for stage in REUSED:  # the same first stages: reuse them (the pipeline resumes finished stages)
        link = workdir / stage
        if not link.exists():
            link.symlink_to(source / stage, target_is_directory=True)
    result = compress(copy.deepcopy(dense.model), dense.data, recipe=recipe, train_hp=_base_hp(name),
                      out=workdir / "model.netp", workdir=workdir)
    s = result.summary()
    dense_val = evaluate(dense.model, dense.data.val).accuracy
    val = evaluate(result.model, dense.data.val).accuracy
    return {"model": name, "lam": lam, "calibration": calibration, "qat": qat, "bytes": s["bytes"], "ratio": s["ratio"],
            "val_drop_pt": 100 * (dense_val - val), "test_drop_pt": 100 * (s["dense_accuracy"] - s["test_accuracy"]),
            "test_accuracy": s["test_accuracy"]}


def plot(rows: list[dict], path: Path) -> None:
    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    for ax, name in zip(axes[0], models):
        for cal, style in ((0, "o--"), (max(r["calibration"] for r in rows), "s-")):
            pts = sorted((r["bytes"], r["test_drop_pt"], r["val_drop_pt"]) for r in rows
                         if r["model"] == name and r["calibration"] == cal)
            label = "plain ECSQ" if cal == 0 else f"calibrated ({cal} inputs)"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{label}: test")
            ax.plot([p[0] for p in pts], [p[2] for p in pts], style, alpha=0.35, label=f"{label}: validation")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set(title=name, xlabel=".netp bytes", ylabel="accuracy drop from dense (pt)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(rows: list[dict]) -> str:
    lines = ["# ECSQ levels with and without calibration (GPTQ-style error feedback)", "",
             f"Same pruned, retrained nets (the `{SOURCE}` runs of `bench/deep_compression.py`); only quantize + encode "
             "rerun, one rate weight at a time. Drops are from the dense net, in pt; the 0.5 pt line is the issue's "
             "budget. On 5,000 validation / 10,000 test images one drop's standard error is about 0.2-0.3 pt.", "",
             "| model | lam | calibration | bytes | ratio | val drop | test drop |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['lam']:g} | {r['calibration'] or 'none'} | {r['bytes']:,} | "
                     f"{r['ratio']:.1f}x | {r['val_drop_pt']:.2f} | {r['test_drop_pt']:.2f} |")
    lines += ["", "![bytes vs accuracy drop](ecsq_calibration.png)"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="lenet300,lenet5")
    ap.add_argument("--lams", default="0.1,0.05,0.02,0.01")
    args = ap.parse_args()
    rows = [measure(name, float(lam), cal) for name in args.models.split(",")
            for lam in args.lams.split(",") for cal in (0, 4096)]
    plot(rows, RESULTS / "ecsq_calibration.png")
    write_result("ecsq_calibration", {"rows": rows}, markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
