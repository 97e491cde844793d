"""Dense baselines on Fashion-MNIST: test accuracy and seconds per epoch of LeNet-300-100 and LeNet-5.

Usage: python bench/train_baselines.py
Targets (issue 2): LeNet-300-100 >= 0.89, LeNet-5 >= 0.90 test accuracy.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DENSE, dense_run, write_result  # noqa: E402

from netpress.data import DataHparams, load_data  # noqa: E402
from netpress.models import build_model  # noqa: E402
from netpress.train import train  # noqa: E402

TARGETS = {"lenet300": 0.89, "lenet5": 0.90}
PAPER = {"lenet300": "MLP 256-128-64: 0.900", "lenet5": "2-conv CNN: 0.876-0.932"}


def seconds_per_epoch(name: str, data) -> float:
    """Time one epoch of training from scratch (the cached runs may have been trained under other load)."""
    model_hp, train_hp = DENSE[name]
    model = build_model(model_hp, data.input_shape, data.num_classes, seed=0)
    start = time.perf_counter()
    train(model, data, train_hp.replace(steps="1ep"), progress=False)
    return time.perf_counter() - start


def main() -> None:
    data = load_data(DataHparams("fashion-mnist"))
    rows = []
    for name in ("lenet300", "lenet5"):
        run = dense_run(name)
        model_hp, train_hp = DENSE[name]
        rows.append({
            "model": name,
            "parameters": sum(p.numel() for p in run.model.parameters()),
            "test_accuracy": run.summary["test_accuracy"],
            "target": TARGETS[name],
            "met": run.summary["test_accuracy"] >= TARGETS[name],
            "seconds_per_epoch": round(seconds_per_epoch(name, data), 2),
            "training": train_hp.to_dict(),
            "fashion_mnist_readme": PAPER[name],
        })
    md = ["# Dense baselines on Fashion-MNIST", "",
          "| model | params | test accuracy | target | met | s/epoch (train + eval, 2 cores) |", "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['parameters']:,} | {r['test_accuracy']:.4f} | {r['target']} | "
                  f"{'yes' if r['met'] else 'NO'} | {r['seconds_per_epoch']} |")
    md += ["", "Training settings:", "", "```", json.dumps({r['model']: r['training'] for r in rows}, indent=1), "```",
           "", "Reference (Fashion-MNIST README): " + "; ".join(PAPER.values())]
    write_result("train_baselines", {"rows": rows}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
