"""The context coder vs ANS (and Huffman) on the same streams of real compressed models (issue 15, item 3).

Every stream (values, positions, zero points) of each ``.netp`` file is decoded and re-encoded by each coder alone;
sizes are the section bytes. Bits per nonzero: all of a model's stream bits / its kept weights.

Files:
    lenet300 / lenet5: the built-in ``deep-compression`` recipe on the cached dense Fashion-MNIST runs
        (``bench/.runs/{model}_deep-compression.netp`` when bench/deep_compression.py left one; otherwise the
        same recipe with no retraining, i.e. a quick prune + k-means share of the dense model: same sparsity
        and bits, only the fine-tuning is skipped; the JSON says which).
    minilm: all-MiniLM-L6-v2 through ``netpress.compress_pretrained(model, calib, "pretrained-max")`` on 128
        template calibration sentences (bench/pretrained.py's), cached in ``bench/.context_cache``.

    lenet300:budget (any model:recipe): the file bench/deep_compression.py wrote for that recipe.

Usage: python bench/context_coder.py [--models lenet300,lenet5,minilm,lenet300:budget] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RUNS, dense_run, write_result  # noqa: E402

from netpress.encode import ans, container, context, huffman  # noqa: E402
from netpress.encode.streams import decode_stream  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".context_cache"
CODERS = {"ans": ans.encode, "huffman": huffman.encode, "context": context.encode}


def lenet_file(name: str) -> tuple[Path, str]:
    """The model's deep-compression file and how it was made."""
    done = RUNS / f"{name}_deep-compression.netp"
    if done.exists():
        return done, "bench/deep_compression.py (prune + retrain, k-means share + fine-tune)"
    out = CACHE / f"{name}_deep-compression_noretrain.netp"
    if not out.exists():
        from netpress.pipeline import compress, load_recipe
        from netpress.pipeline.recipe import parse_recipe

        recipe = load_recipe("deep-compression").to_dict()
        for stage in recipe["stages"]:  # same sparsity and bits; one-shot pruning, one retraining step, no fine-tune
            if "prune" in stage:
                stage["prune"].update(schedule="oneshot", rounds=1, retrain={"steps": "1it"})
            if "quantize" in stage:
                stage["quantize"]["finetune"] = {}
        dense = dense_run(name)
        CACHE.mkdir(exist_ok=True)
        compress(copy.deepcopy(dense.model), dense.data, recipe=parse_recipe(recipe, "deep-compression-noretrain"),
                 out=out, workdir=CACHE / f"work_{name}")
    return out, ("deep-compression recipe without retraining (one-shot prune, one retraining step, k-means share "
                 "of the dense model, no fine-tuning)")


def recipe_file(name: str) -> tuple[Path, str]:
    """``model:recipe``: the file bench/deep_compression.py wrote for that recipe (it must have run)."""
    model, recipe = name.split(":", 1)
    path = RUNS / f"{model}_{recipe}.netp"
    if not path.exists():
        raise SystemExit(f"no {path}: run bench/deep_compression.py --models {model} --recipes {recipe} first")
    return path, f"bench/deep_compression.py, recipe {recipe}"


def minilm_file() -> tuple[Path, str]:
    out = CACHE / "minilm_pretrained-max.netp"
    if not out.exists():
        os.environ["HF_HUB_OFFLINE"] = "1"
        import netpress
        import netpress.hf as hf
        from pretrained import model_folder, sentences

        encoder, tokenizer = hf.load_folder(model_folder())
        CACHE.mkdir(exist_ok=True)
        netpress.compress_pretrained(encoder, hf.TextInputs(sentences(128, seed=1), tokenizer, batch_size=32),
                                     "pretrained-max", out=out, quality=lambda m: {}, report=CACHE / "minilm.md")
    return out, "netpress.compress_pretrained(encoder, 128 calibration sentences, 'pretrained-max')"


def streams_of(path: Path) -> tuple[list[tuple[str, dict, np.ndarray]], int]:
    """``([(section, meta, symbols)], kept weights)`` of every integer stream of a file."""
    manifest, sections, _ = container.parse(path.read_bytes())
    out, kept = [], 0
    for t in manifest["tensors"]:
        metas = list(t.get("positions", {}).get("streams", {}).values())
        if t["kind"] == "codes":
            kept += t["kept"]
            metas.append(t["values"])
            zp = t.get("affine", {}).get("zero_point", {})
            metas += [zp["stream"]] if "stream" in zp else []
        for meta in metas:
            out.append((meta["section"], meta, decode_stream(sections[meta["section"]], meta, meta["section"])))
    return out, kept


def measure(path: Path) -> dict:
    """Bytes of every stream under each coder, encode/decode seconds of the context coder."""
    streams, kept = streams_of(path)
    rows, seconds = [], {"encode": 0.0, "decode": 0.0}
    for section, meta, x in streams:
        row = {"stream": section, "count": len(x), "alphabet": meta["alphabet"], "stored": meta["coding"],
               "stored_bytes": None}
        for coder, enc in CODERS.items():
            if coder == "huffman" and meta["alphabet"] > huffman.MAX_ALPHABET or \
                    coder == "context" and meta["alphabet"] > context.MAX_ALPHABET:
                row[coder] = None  # not applicable: skipped
                continue
            start = time.perf_counter()
            data, params = enc(x, meta["alphabet"])
            if coder == "context":
                seconds["encode"] += time.perf_counter() - start
                start = time.perf_counter()
                assert np.array_equal(context.decode(data, len(x), meta["alphabet"], params), x)
                seconds["decode"] += time.perf_counter() - start
                row["contexts"] = params["contexts"]
            row[coder] = len(data)
        rows.append(row)
    totals = {c: sum(r[c] if r[c] is not None else r["ans"] for r in rows) for c in CODERS}
    best = sum(min(r["ans"], r["context"] if r["context"] is not None else r["ans"]) for r in rows)
    return {"file": str(path.name), "file_bytes": path.stat().st_size, "kept": kept, "streams": rows,
            "totals": totals, "context_where_smaller": best,
            "bits_per_nonzero": {c: 8 * v / max(kept, 1) for c, v in {**totals, "context_where_smaller": best}.items()},
            "context_wins": sum(r["context"] is not None and r["context"] < r["ans"] for r in rows),
            "context_seconds": seconds}


def markdown(results: dict, args, load: str) -> str:
    lines = [f"# Context coder vs ANS and Huffman on the same streams", "",
             f"Load average at the start: {load} (2-core machine shared with other jobs); torch threads "
             f"{args.threads}. Each stream of the file is decoded and re-encoded by each coder alone. "
             "`context where smaller` = per stream the smaller of ANS and the context coder (what `coder='context'`"
             " writes). Bits per nonzero = all stream bits of the model / kept weights.", "",
             "| model | source | kept | streams | ANS B | Huffman B | context B | context where smaller B | "
             "bits/nz ANS | bits/nz Huffman | bits/nz context | bits/nz ctx-where-smaller | streams context wins | "
             "context enc s | context dec s |", "|" + "---|" * 15]
    for name, r in results.items():
        t, b = r["totals"], r["bits_per_nonzero"]
        lines.append(f"| {name} | {r['source']} | {r['kept']:,} | {len(r['streams'])} | {t['ans']:,} | "
                     f"{t['huffman']:,} | {t['context']:,} | {r['context_where_smaller']:,} | {b['ans']:.4f} | "
                     f"{b['huffman']:.4f} | {b['context']:.4f} | {b['context_where_smaller']:.4f} | "
                     f"{r['context_wins']}/{len(r['streams'])} | {r['context_seconds']['encode']:.2f} | "
                     f"{r['context_seconds']['decode']:.2f} |")
    lines += ["", "Saving of `coder='context'` (context coder where smaller, else ANS) over ANS on all streams: "
              + "; ".join(
        f"{n} {100 * (1 - r['context_where_smaller'] / r['totals']['ans']):.2f}% "
        f"({r['totals']['ans'] - r['context_where_smaller']:,} B; the context coder on every stream: "
        f"{100 * (r['totals']['context'] / r['totals']['ans'] - 1):+.2f}% size vs ANS)" for n, r in results.items()) + ". "
        "Where it loses, the cost is the 4-byte state per 4096-symbol lane and the 15-bit frequencies "
        "(ANS: constriction's 24-bit model) on streams without previous-symbol structure."]
    skipped = [f"{n}: {s['stream']}" for n, r in results.items() for s in r["streams"] if s["context"] is None]
    lines += ["", f"Streams the context coder skipped (alphabet > {context.MAX_ALPHABET}; counted at their ANS size): "
              f"{', '.join(skipped) or 'none'}. No stream is skipped for its length: lanes keep every stream to at "
              f"most {context.STEPS} decode steps."]
    lines += ["", "Per stream (bytes; `contexts` = tables the context coder chose, 1 = no context, i.e. a static rANS "
              "with 15-bit frequencies):", ""]
    for name, r in results.items():
        lines += [f"## {name}", "", "| stream | count | alphabet | ANS | Huffman | context | contexts | ctx/ANS |",
                  "|" + "---|" * 8]
        for s in r["streams"]:
            ratio = f"{s['context'] / s['ans']:.4f}" if s["context"] is not None and s["ans"] else "-"
            lines.append(f"| {s['stream']} | {s['count']:,} | {s['alphabet']} | {s['ans']:,} | "
                         f"{s['huffman'] if s['huffman'] is not None else 'skipped'} | "
                         f"{s['context'] if s['context'] is not None else 'skipped'} | {s.get('contexts', '-')} | "
                         f"{ratio} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet300,lenet5,minilm")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    results = {}
    for name in args.models.split(","):
        path, source = minilm_file() if name == "minilm" else recipe_file(name) if ":" in name else lenet_file(name)
        results[name] = {"source": source, **measure(path)}
        print(name, results[name]["bits_per_nonzero"], flush=True)
    write_result("context_coder", {"load_average": load, "threads": args.threads, "results": results},
                 markdown(results, args, load))


if __name__ == "__main__":
    main()
