"""Pruning bench: Han's 12x (8% of weights) with iterative retraining vs torch.nn.utils.prune, structured-pruning
latency, CSR vs dense Linear latency.

Usage: nice -n 10 python bench/pruning.py [--retrain-epochs N] [--rounds R]
Targets (issue 3): accuracy drop <= 0.3 pt at 8% weights; 50%-neuron LeNet-300-100 >= 1.7x faster at batch 256;
CSR at least torch's own kernel (about 3.5x at 95%, 12x at 99%, 4096x4096, batch 1).
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune as tprune

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dense_run, write_result  # noqa: E402

from netpress.prune import compute_masks, sparsity, strip  # noqa: E402
from netpress.prune.accounting import account  # noqa: E402
from netpress.prune.schedules import iterative_prune, round_targets  # noqa: E402
from netpress.prune.speed import CSRLinear, latency  # noqa: E402
from netpress.prune.surgery import prune_structured  # noqa: E402
from netpress.train import TrainingHparams, evaluate, train  # noqa: E402

TARGET_SPARSITY = 0.92


def retrain_hp(epochs: int) -> TrainingHparams:
    return TrainingHparams(optimizer="sgd", lr=0.005, momentum=0.9, weight_decay=1e-4, batch_size=128,
                           steps=f"{epochs}ep", lr_schedule="cosine", eval_every=f"{epochs}ep")


def netpress_iterative(model, data, rounds, epochs) -> dict:
    t = time.perf_counter()
    hist = iterative_prune(model, data, TARGET_SPARSITY, rounds=rounds, retrain_hp=retrain_hp(epochs),
                           score="magnitude", scope="global", progress=False)
    return {"test_accuracy": hist[-1]["test_accuracy"], "sparsity": sparsity(model), "rounds": hist,
            "seconds": time.perf_counter() - t}


def torch_iterative(model, data, rounds, epochs) -> dict:
    """The same budget and retraining with torch.nn.utils.prune.global_unstructured (L1)."""
    t = time.perf_counter()
    params = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    prev, acc = 0.0, None
    for target in round_targets(TARGET_SPARSITY, rounds):
        amount = 1 - (1 - target) / (1 - prev)  # torch prunes a fraction of the still-unpruned weights
        tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=amount)
        acc = train(model, data, retrain_hp(epochs), progress=False).final_test_accuracy
        prev = target
    zeros = sum(int((m.weight == 0).sum()) for m, _ in params)
    total = sum(m.weight.numel() for m, _ in params)
    return {"test_accuracy": acc, "sparsity": zeros / total, "seconds": time.perf_counter() - t}


def accuracy_rows(rounds: int, epochs: dict, models: list[str]) -> list[dict]:
    rows = []
    for name in models:
        run = dense_run(name)
        dense_acc = evaluate(run.model, run.data.test).accuracy
        ours = netpress_iterative(copy.deepcopy(run.model), run.data, rounds, epochs[name])
        ref = torch_iterative(copy.deepcopy(run.model), run.data, rounds, epochs[name])
        rows.append({"model": name, "dense_accuracy": dense_acc, "rounds": rounds, "retrain_epochs_per_round": epochs[name],
                     "netpress_accuracy": ours["test_accuracy"], "netpress_sparsity": ours["sparsity"],
                     "netpress_drop_pt": 100 * (dense_acc - ours["test_accuracy"]),
                     "torch_accuracy": ref["test_accuracy"], "torch_sparsity": ref["sparsity"],
                     "torch_drop_pt": 100 * (dense_acc - ref["test_accuracy"]),
                     "netpress_seconds": ours["seconds"], "torch_seconds": ref["seconds"], "per_round": ours["rounds"]})
        print(rows[-1], flush=True)
    return rows


def structured_rows() -> list[dict]:
    run = dense_run("lenet300")
    x = run.data.test.x[:256]
    res = prune_structured(run.model, 0.5, x[:8])
    dense, small = run.model.eval(), res.model.eval()
    _, td = account(dense, run.data.input_shape)
    _, ts = account(small, run.data.input_shape)
    rows = []
    for bs in (1, 256):
        xb = x[:bs]
        ld, ls = latency(dense, xb, repeats=200), latency(small, xb, repeats=200)
        rows.append({"batch": bs, "dense_ms": 1e3 * ld, "thinned_ms": 1e3 * ls, "speedup": ld / ls,
                     "flops_ratio": td["flops_dense"] / ts["flops_dense"],
                     "thinned_accuracy_no_finetune": evaluate(small, run.data.test).accuracy})
    print(rows, flush=True)
    return rows


def csr_rows() -> list[dict]:
    rows = []
    for label, (out_f, in_f) in {"lenet300 fc1 300x784": (300, 784), "4096x4096": (4096, 4096)}.items():
        torch.manual_seed(0)
        lin = nn.Linear(in_f, out_f).eval()
        x = torch.randn(1, in_f)
        for s in (0.90, 0.95, 0.99):
            layer = copy.deepcopy(lin)
            mask = compute_masks(layer, s, scope="local")["weight"]
            with torch.no_grad():
                layer.weight.mul_(mask)
            csr = CSRLinear(layer)
            torch.testing.assert_close(csr(x), layer(x), atol=1e-4, rtol=1e-4)
            reps = 2000 if in_f < 1000 else 300
            ld, lc = latency(layer, x, repeats=reps), latency(csr, x, repeats=reps)
            rows.append({"layer": label, "sparsity": s, "dense_us": 1e6 * ld, "csr_us": 1e6 * lc, "speedup": ld / lc})
            print(rows[-1], flush=True)
    return rows


def markdown(acc, struct, csr, args) -> str:
    lines = ["# Pruning bench", "",
             f"Fashion-MNIST, global magnitude pruning to 8% of weights (sparsity {TARGET_SPARSITY}), {args.rounds} "
             "prune-retrain rounds (SGD lr 0.005 momentum 0.9, cosine per round); the same schedule and retraining with "
             "`torch.nn.utils.prune.global_unstructured` (L1). Retraining is shortened (epochs per round below) to fit a "
             "loaded 2-core machine. Target: drop <= 0.3 pt.", "",
             "| model | dense acc | netpress acc | drop (pt) | torch.prune acc | drop (pt) | sparsity | epochs/round | pass |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in acc:
        lines.append(f"| {r['model']} | {r['dense_accuracy']:.4f} | {r['netpress_accuracy']:.4f} | {r['netpress_drop_pt']:.2f} | "
                     f"{r['torch_accuracy']:.4f} | {r['torch_drop_pt']:.2f} | {r['netpress_sparsity']:.4f} | "
                     f"{r['retrain_epochs_per_round']} | {'yes' if r['netpress_drop_pt'] <= 0.3 else 'no'} |")
    missing = sorted({"lenet300", "lenet5"} - {r["model"] for r in acc})
    if missing:
        lines.append(f"\nNot measured in this run: {', '.join(missing)} (see the report of the run that produced this file).")
    lines += ["", "## Structured: LeNet-300-100 with 50% of hidden neurons removed (surgery, no fine-tuning)", "",
              "| batch | dense ms | thinned ms | speedup | FLOPs ratio | target (batch 256) |", "|---|---|---|---|---|---|"]
    for r in struct:
        tgt = ("met" if r["speedup"] >= 1.7 else "missed") + " (>= 1.7x)" if r["batch"] == 256 else "-"
        lines.append(f"| {r['batch']} | {r['dense_ms']:.4f} | {r['thinned_ms']:.4f} | {r['speedup']:.2f}x | {r['flops_ratio']:.2f}x | {tgt} |")
    lines.append(f"\nThinned accuracy without fine-tuning: {struct[0]['thinned_accuracy_no_finetune']:.4f}.")
    lines += ["", "## CSR (torch.sparse_csr, `CSRLinear`) vs dense Linear, batch 1", "",
              "| layer | sparsity | dense us | CSR us | speedup |", "|---|---|---|---|---|"]
    for r in csr:
        lines.append(f"| {r['layer']} | {r['sparsity']:.2f} | {r['dense_us']:.1f} | {r['csr_us']:.1f} | {r['speedup']:.2f}x |")
    lines.append("\nReference from the issue: torch's CSR kernel gives about 3.5x at 95% and 12x at 99% on 4096x4096 "
                 "(`CSRLinear` is that kernel, so the comparison is against the dense layer on this machine).")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs-lenet300", type=int, default=3)
    p.add_argument("--epochs-lenet5", type=int, default=1)
    p.add_argument("--models", default="lenet300,lenet5", help="comma-separated dense baselines to prune")
    args = p.parse_args()
    torch.set_num_threads(1)
    csr = csr_rows()
    struct = structured_rows()
    acc = accuracy_rows(args.rounds, {"lenet300": args.epochs_lenet300, "lenet5": args.epochs_lenet5},
                        args.models.split(","))
    write_result("pruning", {"accuracy": acc, "structured": struct, "csr": csr, "args": vars(args)},
                 markdown(acc, struct, csr, args))


if __name__ == "__main__":
    main()
