"""ECSQ quantization-aware training (``quantize: {qat: ...}``) vs rounding the trained weights directly, on the same
pruned nets: bytes vs validation / test accuracy.

Like ``bench/ecsq_calibration.py`` (whose helpers it uses): reads the pruned, retrained model of
``bench/deep_compression.py --recipes budget@z0`` and reruns only the budget recipe's quantize + encode stages at
each rate weight ``lam`` alone, in four variants measured in the same run: plain or calibrated (4,096 training
inputs) rounding, each with and without ``qat`` (8 epochs at lr 0.005, cosine: the forward pass uses each weight's
ECSQ level, gradients pass straight through, levels re-solved every epoch) before it. Every variant then gets the
recipe's 2-epoch centroid fine-tune, 8-bit biases, float16 codebooks and the context coder.

Usage: python bench/ecsq_qat.py [--models lenet300] [--lams 0.2,0.1,0.05,0.02]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, write_result  # noqa: E402
from ecsq_calibration import SOURCE, measure  # noqa: E402

QAT = {"steps": "8ep", "lr": 0.005, "lr_schedule": "cosine"}
VARIANTS = [(0, None), (0, QAT), (4096, None), (4096, QAT)]


def label(row: dict) -> str:
    return f"{'calibrated' if row['calibration'] else 'plain'}{' + qat' if row['qat'] else ''}"


def plot(rows: list[dict], path: Path) -> None:
    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    for ax, name in zip(axes[0], models):
        for cal, qat in VARIANTS:
            pts = sorted((r["bytes"], r["test_drop_pt"]) for r in rows
                         if r["model"] == name and r["calibration"] == cal and bool(r["qat"]) == bool(qat))
            style = ("s" if cal else "o") + ("-" if qat else "--")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                    label=label({"calibration": cal, "qat": qat}) + ": test")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set(title=name, xlabel=".netp bytes", ylabel="test accuracy drop from dense (pt)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(rows: list[dict]) -> str:
    lines = ["# ECSQ with and without quantization-aware training", "",
             f"Same pruned, retrained nets (the `{SOURCE}` runs of `bench/deep_compression.py`); only quantize + encode "
             "rerun, one rate weight at a time; `qat` = 8 epochs (lr 0.005, cosine) of training through the ECSQ levels "
             "before the rounding. Drops are from the dense net, in pt; the 0.5 pt line is the issue's budget. On "
             "5,000 validation / 10,000 test images one drop's standard error is about 0.2-0.3 pt.", "",
             "| model | lam | rounding | bytes | ratio | val drop | test drop |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['lam']:g} | {label(r)} | {r['bytes']:,} | {r['ratio']:.1f}x | "
                     f"{r['val_drop_pt']:.2f} | {r['test_drop_pt']:.2f} |")
    lines += ["", "![bytes vs test accuracy drop](ecsq_qat.png)"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="lenet300")
    ap.add_argument("--lams", default="0.2,0.1,0.05,0.02")
    args = ap.parse_args()
    rows = [measure(name, float(lam), cal, qat) for name in args.models.split(",")
            for lam in args.lams.split(",") for cal, qat in VARIANTS]
    plot(rows, RESULTS / "ecsq_qat.png")
    write_result("ecsq_qat", {"rows": rows}, markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
