"""Deep Compression end to end on Fashion-MNIST (LeNet-300-100, LeNet-5), next to the paper's MNIST numbers and a
peer baseline built from PyTorch's own tools on the same trained nets.

Usage: python bench/deep_compression.py [--models lenet300,lenet5] [--recipes deep-compression,max] [--val-size N]
(a recipe ``budget@z0`` is ``budget`` with every stage's ``confidence`` set to 0: its budget spent on the raw,
smoothed validation drop, without the standard-error margin; ``--val-size 10000`` gives the recipes 10,000
validation images instead of 5,000, with a dense net trained on the other 50,000: rows ``<recipe>/val10000``).
Targets (issue 7): deep-compression >= 40x (LeNet-300-100) and >= 39x (LeNet-5) with <= 0.5 pt accuracy drop;
max >= 50x for both within the same budget.
"""
from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import io
import json
import lzma
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, RUNS, dense_run, write_result  # noqa: E402

from netpress.pipeline import compress, load_recipe, parse_recipe  # noqa: E402
from netpress.train import evaluate, train  # noqa: E402

PAPER = {"lenet300": {"error": "1.64 -> 1.58%", "size": "1070 KB -> 27 KB", "ratio": 40},
         "lenet5": {"error": "0.80 -> 0.74%", "size": "1720 KB -> 44 KB", "ratio": 39}}
TARGET = {("lenet300", "deep-compression"): 40, ("lenet5", "deep-compression"): 39,
          ("lenet300", "max"): 50, ("lenet5", "max"): 50, ("lenet300", "budget"): 64, ("lenet5", "budget"): 160}
BUDGET = 0.005  # accuracy drop allowed, a fraction (0.5 pt)


def bench_recipe(recipe_name: str):
    """A built-in recipe, or ``<name>@z<c>``: that recipe with every stage's ``confidence`` set to ``c`` (a row
    label's ``/val<N>`` suffix, the validation size it ran with, is ignored)."""
    recipe_name = recipe_name.split("/")[0]
    if "@z" not in recipe_name:
        return load_recipe(recipe_name)
    return parse_recipe(bench_recipe_doc(recipe_name), recipe_name)


def bench_recipe_doc(recipe_name: str) -> dict:
    """The YAML document of ``<name>`` or ``<name>@z<c>`` (a copy, free to edit)."""
    base, _, z = recipe_name.partition("@z")
    doc = copy.deepcopy(load_recipe(base).source)
    for stage in doc["stages"]:
        for kind, fields in stage.items():
            if z and kind in ("prune", "quantize"):
                fields["confidence"] = float(z)
    return doc


def row_label(recipe_name: str, val_size: int) -> str:
    """A row's recipe column: the recipe, with ``/val<N>`` when it decided on ``N`` validation images instead of
    the default 5,000 (a dense net trained on the rest of the training set)."""
    return recipe_name if val_size < 0 else f"{recipe_name}/val{val_size}"


def base_recipe(label: str) -> str:
    return label.split("/")[0].split("@")[0]


def run_recipe(name: str, recipe_name: str, dense, val_size: int = -1) -> dict:
    recipe = bench_recipe(recipe_name)
    label = row_label(recipe_name, val_size)
    file_label = label.replace("/", "_")
    model = copy.deepcopy(dense.model)
    out = RUNS / f"{name}_{file_label}.netp"
    workdir = RUNS / f"compress_{dense.id}_{recipe.digest()}"
    result = compress(model, dense.data, recipe=recipe, train_hp=_base_hp(name), out=out, workdir=workdir,
                      report_dir=RESULTS / f"deep_compression_{name}_{file_label}",
                      title=f"{label}: {name} on Fashion-MNIST")
    s = result.summary()
    rounds = result.notes.get("budget_rounds")
    if rounds:
        _test_drops(rounds, dense, workdir)
    return {"model": name, "recipe": label, **s, "val_examples": len(dense.data.val), "drop_pt": 100 * (s["dense_accuracy"] - s["test_accuracy"]),
            "stages": result.rows, "layers": result.layers, "bits": result.notes.get("bits"),
            "layer_sparsity": {n: float((w == 0).float().mean()) for n, w in result.final_weights.items()},
            "budget_rounds": rounds, "lam_search": result.notes.get("lam_search"),
            "lam": result.notes.get("lam")}


def _test_drops(rounds: list[dict], dense, workdir: Path) -> None:
    """Each budget round's test-accuracy drop (a diagnostic read after the search: how well the validation
    drops it decided on predict test drops), added to its record."""
    from netpress.prune import apply_masks
    from netpress.prune.masks import masks_from_state_dict

    folder = next(workdir.glob("*_prune"))
    reference = evaluate(dense.model, dense.data.test).accuracy
    for i, record in enumerate(rounds, start=1):
        state = torch.load(folder / f"round{i}" / "state.pt", weights_only=True)
        model = copy.deepcopy(dense.model)
        apply_masks(model, masks_from_state_dict(state))
        model.load_state_dict(state)
        record["test_drop"] = reference - evaluate(model, dense.data.test).accuracy


def _base_hp(name: str):
    from common import DENSE

    return DENSE[name][1]


def torch_baseline(name: str, dense, sparsity: dict[str, float], retrain_steps: str) -> dict:
    """The peer baseline, cached in ``bench/.runs`` by its inputs (so re-running the bench does not retrain it)."""
    key = hashlib.sha256(json.dumps([dense.id, sparsity, retrain_steps], sort_keys=True).encode()).hexdigest()[:12]
    cache = RUNS / f"torch_baseline_{name}_{key}.json"
    if not cache.exists():
        cache.write_text(json.dumps(_torch_baseline(name, dense, sparsity, retrain_steps)))
    return json.loads(cache.read_text())


def _torch_baseline(name: str, dense, sparsity: dict[str, float], retrain_steps: str) -> dict:
    """torch.nn.utils.prune (L1, same per-layer sparsity) + the same retraining length + dynamic int8 + torch.save,
    then gzip -9 and xz -9 of the saved bytes."""
    import torch.nn.utils.prune as tprune

    model = copy.deepcopy(dense.model)
    modules = dict(model.named_modules())
    for tensor, fraction in sparsity.items():
        tprune.l1_unstructured(modules[tensor.rsplit(".", 1)[0]], "weight", amount=fraction)
    pruned_acc = evaluate(model, dense.data.test).accuracy
    train(model, dense.data, _base_hp(name).replace(steps=retrain_steps, lr=0.01), desc="torch-prune retrain")
    for tensor in sparsity:
        tprune.remove(modules[tensor.rsplit(".", 1)[0]], "weight")
    retrained_acc = evaluate(model, dense.data.test).accuracy
    qmodel = torch.ao.quantization.quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8)
    acc = evaluate(qmodel, dense.data.test).accuracy
    buf = io.BytesIO()
    torch.save(qmodel.state_dict(), buf)
    raw = buf.getvalue()
    fp32 = 4 * sum(p.numel() for p in dense.model.parameters())
    sizes = {"torch_save": len(raw), "gzip9": len(gzip.compress(raw, 9)), "xz9": len(lzma.compress(raw, preset=9))}
    return {"model": name, "pruned_no_retrain_accuracy": pruned_acc, "retrained_accuracy": retrained_acc,
            "test_accuracy": acc, "bytes": sizes, "ratio": {k: fp32 / v for k, v in sizes.items()}}


PEER_RECIPES = ("deep-compression", "budget")  # rows that get a torch peer at their own per-layer sparsity


def _retrain_length(row: dict) -> str:
    """Epochs of retraining on the path to the row's pruned model: every round for a fixed schedule, the rounds up
    to the kept one for ``budget`` (rounds pruned past it are search cost, not part of the kept model's training)."""
    stages = bench_recipe(row["recipe"]).stages
    prune = next(s.hparams for s in stages if s.kind == "prune")
    per_round = int(prune.retrain.get("steps", "1ep").rstrip("ep"))
    kept = [i + 1 for i, r in enumerate(row["budget_rounds"] or []) if r["chosen"]]
    rounds = prune.rounds if prune.schedule != "budget" else (kept[0] if kept else 0)
    after = sum(int(s.hparams.overrides.get("steps", "0ep").rstrip("ep")) for s in stages if s.kind == "train")
    return f"{rounds * per_round + after}ep"


def _path_table(row: dict) -> list[str]:
    """A budget row's pruning path: validation drops as measured and smoothed, and the test drops of the same
    states (read after the search, never by it)."""
    rounds = row.get("budget_rounds") or []
    if not rounds or "fitted_drop" not in rounds[0]:
        return []
    md = ["", "Pruning path (drops in pt; validation: measured +- one standard error, smoothed +- pooled standard "
          "error; test: the same round's state, before the final retraining and quantization):", "",
          "| round | sparsity | val drop | smoothed | test drop | kept |", "|---|---|---|---|---|---|"]
    for i, x in enumerate(rounds, start=1):
        test = f"{100 * x['test_drop']:.2f}" if "test_drop" in x else ""
        md.append(f"| {i} | {x['sparsity']:.4f} | {100 * x['drop']:.2f} +- {100 * x['se']:.2f} | "
                  f"{100 * x['fitted_drop']:.2f} +- {100 * x['pooled_se']:.2f} | {test} | "
                  f"{'**kept**' if x['chosen'] else ''} |")
    return md


def markdown(rows: list[dict], peers: list[dict], commands: list[str]) -> str:
    md = ["# Deep Compression on Fashion-MNIST", "", "Rows merged from these invocations: "
          + "; ".join(f"`{c}`" for c in commands), "",
          f"Accuracy budget: {100 * BUDGET:.1f} pt drop (test data; the budget recipes decide on 5,000 validation "
          "images carved from the training set, or N for rows `/valN`). Bytes are real `.netp` files (stage P and P+Q are the same model "
          "written with Huffman positions / fixed-length indices).", "",
          "| model | recipe | dense acc | compressed acc | drop (pt) | dense bytes | bytes | ratio | target | met | "
          "paper (MNIST) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        target = TARGET.get((r["model"], base_recipe(r["recipe"])))
        met = r["ratio"] >= target and r["drop_pt"] <= 100 * BUDGET
        p = PAPER[r["model"]]
        md.append(f"| {r['model']} | {r['recipe']} | {r['dense_accuracy']:.4f} | {r['test_accuracy']:.4f} | "
                  f"{r['drop_pt']:.2f} | {r['dense_bytes']:,} | {r['bytes']:,} | {r['ratio']:.1f}x | {target}x | "
                  f"{'yes' if met else 'NO'} | {p['size']}, {p['ratio']}x, error {p['error']} |")
    md += ["", "## Stages", ""]
    for r in rows:
        md += [f"### {r['model']} / {r['recipe']}", "", "| stage | accuracy | bytes | ratio | sparsity |", "|---|---|---|---|---|"]
        md += [f"| {s['stage']} | {s['test_accuracy']:.4f} | {s['bytes']:,} | {s['ratio']:.1f}x | {s['sparsity']:.3f} |"
               for s in r["stages"]]
        md += ["", "| layer | weights | kept | bits | weight bits (coded) | index bits/weight | total bytes | ratio |",
               "|---|---|---|---|---|---|---|---|"]
        md += [f"| {t['name']} | {t['weights']:,} | {t.get('kept_fraction') or 1:.3f} | {t.get('bits')} | "
               f"{t.get('weight_bits_coded') or 0:.2f} | {t.get('index_bits') or 0:.2f} | {t['total_bytes']:,} | "
               f"{t['ratio']:.1f}x |" for t in r["layers"] if t["kind"] == "codes"]
        md += _path_table(r)
        md += ["", f"Report with plots: `bench/results/deep_compression_{r['model']}_{r['recipe'].replace('/', '_')}"
                   "/report.md`", ""]
    md += ["## Peer baseline: torch.nn.utils.prune + dynamic int8 + torch.save (+ gzip / xz)", "",
           "Same trained nets and the same per-layer sparsity as the netpress recipe named, retrained (SGD lr 0.01, "
           "cross-entropy) for as long as that recipe's kept model was (deep-compression: 3 rounds x 6 epochs; "
           "budget: the rounds up to its kept one x 6 epochs + 20 epochs); conv layers stay fp32 (dynamic quantization covers Linear "
           "only).", "",
           "| model | sparsity of | retraining | accuracy | torch.save bytes | gzip -9 | xz -9 | best ratio |",
           "|---|---|---|---|---|---|---|---|"]
    for p in peers:
        b = p["bytes"]
        md.append(f"| {p['model']} | {p.get('recipe', 'deep-compression')} | {p.get('retrain', '')} | "
                  f"{p['test_accuracy']:.4f} | {b['torch_save']:,} | {b['gzip9']:,} | {b['xz9']:,} | "
                  f"{max(p['ratio'].values()):.1f}x |")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="lenet300,lenet5")
    ap.add_argument("--recipes", default="deep-compression,max")
    ap.add_argument("--peer-retrain", default=None,
                    help="retraining length of the torch baseline (default: the same as deep-compression's)")
    ap.add_argument("--fresh", action="store_true", help="drop rows of earlier invocations instead of merging")
    ap.add_argument("--val-size", type=int, default=-1,
                    help="validation images carved from the training set (default 5,000); the dense net is trained "
                         "on the rest and the rows are labelled <recipe>/val<N>")
    args = ap.parse_args()
    mine, my_peers = [], []
    for name in args.models.split(","):
        dense = dense_run(name, val_size=args.val_size)
        for recipe_name in args.recipes.split(","):
            row = run_recipe(name, recipe_name, dense, args.val_size)
            mine.append(row)
            print(f"{name} {recipe_name}: {row['ratio']:.1f}x, drop {row['drop_pt']:.2f} pt", flush=True)
        for row in [r for r in mine if r["model"] == name and r["recipe"].split("/")[0] in PEER_RECIPES]:
            steps = args.peer_retrain or _retrain_length(row)
            my_peers.append({**torch_baseline(name, dense, row["layer_sparsity"], steps), "retrain": steps,
                             "recipe": row["recipe"]})
    # earlier rows are read only now, so invocations running side by side (one per model) merge instead of
    # overwriting each other
    rows, peers, commands = _earlier(args.fresh)
    keys = {(r["model"], r["recipe"]) for r in mine}
    rows = [r for r in rows if (r["model"], r["recipe"]) not in keys] + mine
    peer_keys = {(p["model"], p["recipe"]) for p in my_peers}
    peers = [p for p in peers if (p["model"], p.get("recipe", "deep-compression")) not in peer_keys] + my_peers
    if all((r["model"], r["recipe"]) in keys for r in rows):  # every row is this run's: no earlier invocation
        commands = []
    command = " ".join(sys.argv)
    commands = [c for c in commands if c != command] + [command]
    order = {"lenet300": 0, "lenet5": 1}
    rows.sort(key=lambda r: (order.get(r["model"], 9), r["recipe"]))
    peers.sort(key=lambda p: (order.get(p["model"], 9), p.get("recipe", "deep-compression")))
    write_result("deep_compression", {"rows": rows, "peers": peers, "paper": PAPER, "budget": BUDGET,
                                      "invocations": commands}, markdown(rows, peers, commands))
    print(markdown(rows, peers, commands))


def _earlier(fresh: bool) -> tuple[list[dict], list[dict], list[str]]:
    """Rows of earlier invocations (each model/recipe is kept from its latest run), so runs can be split."""
    path = RESULTS / "deep_compression.json"
    if fresh or not path.exists():
        return [], [], []
    old = json.loads(path.read_text())
    return old.get("rows", []), old.get("peers", []), old.get("invocations", [old["meta"]["command"]])


if __name__ == "__main__":
    main()
