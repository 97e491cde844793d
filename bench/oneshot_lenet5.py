"""One-shot (no retraining) quantization of LeNet-5 on Fashion-MNIST: GPTQ vs round-to-nearest, 4 and 3 bits.

Usage: python bench/oneshot_lenet5.py [--calib 512]
Writes bench/results/oneshot_lenet5.{json,md}.

Every method quantizes all four weight tensors (2 conv, 2 fc) per output channel from the same dense baseline
(bench/common.dense_run('lenet5')); calibration images are a fixed random subset of the training split, labels
unused. Peers, same run: round-to-nearest with min-max ranges, round-to-nearest with MSE-searched ranges, plain
k-means sharing (one codebook per tensor). Target (issue 11): 4-bit GPTQ drop <= 0.3 pt.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dense_run, write_result  # noqa: E402

import netpress  # noqa: E402
from netpress.calibrate import oneshot  # noqa: E402
from netpress.quantize import GPTQHparams, UniformSpec, quantize_weights, share_weights  # noqa: E402
from netpress.quantize.activations import calibration_inputs  # noqa: E402
from netpress.train import evaluate  # noqa: E402

BITS = (4, 3)
TARGET_DROP_4BIT = 0.3  # points


def methods(bits: int, batches: list) -> dict:
    """name -> function(model) quantizing it in place."""
    spec = UniformSpec(bits=bits, symmetric=False, granularity="channel")
    return {
        "RTN min-max": lambda m: quantize_weights(m, spec),
        "RTN mse-clip": lambda m: quantize_weights(m, spec.replace(calibration="mse")),
        "GPTQ": lambda m: oneshot(m, batches, quantize=GPTQHparams(bits=bits)),
        "GPTQ act-order": lambda m: oneshot(m, batches, quantize=GPTQHparams(bits=bits, act_order=True)),
        "k-means": lambda m: share_weights(m, bits),
        "k-means GPTQ": lambda m: oneshot(m, batches, quantize=GPTQHparams(bits=bits, method="kmeans")),
    }


def file_bytes(model) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return netpress.save(model, Path(tmp) / "m.netp")["file_bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=512, help="calibration images")
    args = parser.parse_args()
    dense = dense_run("lenet5")
    base, data = dense.model.eval(), dense.data
    batches = list(calibration_inputs(data.train, args.calib, batch_size=128))
    base_acc = evaluate(base, data.test).accuracy
    rows = []
    for bits in BITS:
        for name, fn in methods(bits, batches).items():
            model = copy.deepcopy(base)
            start = time.perf_counter()
            fn(model)
            seconds = time.perf_counter() - start
            acc = evaluate(model, data.test).accuracy
            rows.append({"method": name, "bits": bits, "test_accuracy": acc, "drop_pt": 100 * (base_acc - acc),
                         "seconds": seconds, "file_bytes": file_bytes(model)})
            print(rows[-1], flush=True)
    gptq4 = next(r for r in rows if r["method"] == "GPTQ" and r["bits"] == 4)
    payload = {"dense_test_accuracy": base_acc, "calibration_images": args.calib, "rows": rows,
               "target": {"gptq_4bit_drop_pt_max": TARGET_DROP_4BIT, "met": gptq4["drop_pt"] <= TARGET_DROP_4BIT}}
    write_result("oneshot_lenet5", payload, markdown(payload))


def markdown(p: dict) -> str:
    lines = ["# One-shot quantization of LeNet-5 (Fashion-MNIST), no retraining", "",
             f"Dense test accuracy {p['dense_test_accuracy']:.4f}; {p['calibration_images']} unlabeled calibration "
             "images from the training split. All four weight tensors quantized per output channel (k-means: one "
             "codebook per tensor). Times on a loaded 2-core machine shared with other jobs (compare within the run).",
             "", "| bits | method | test accuracy | drop (pt) | seconds | .netp bytes |", "|---|---|---|---|---|---|"]
    for r in p["rows"]:
        lines.append(f"| {r['bits']} | {r['method']} | {r['test_accuracy']:.4f} | {r['drop_pt']:.2f} | "
                     f"{r['seconds']:.2f} | {r['file_bytes']:,} |")
    t = p["target"]
    lines += ["", f"Target: 4-bit GPTQ drop <= {t['gptq_4bit_drop_pt_max']} pt: **{'met' if t['met'] else 'missed'}**."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
