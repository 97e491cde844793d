"""``netpress inspect model.netp``: the per-layer size table of Deep Compression Tables 2-3."""
from __future__ import annotations

from netpress.cli import common

COLUMNS = ["layer", "weights", "kept_%", "bits", "coded_bits", "positions", "index_bits", "codebook_B", "total_B",
           "ratio"]


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="per-layer size table of a .netp file (weights, %% kept, bits, bytes, ratio)")
    p.add_argument("path", help="the .netp file")
    p.add_argument("--streams", action="store_true", help="also list every coded stream: bits/symbol vs entropy")
    p.add_argument("--runtime", action="store_true",
                   help="time each layer's kernels here and print the runtime plan (dense / int8 / lowbit / csr)")
    p.add_argument("--runtime-cache", metavar="JSON", help="with --runtime: reuse/store timings in this file")
    common.add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.runtime:
        return _run_runtime(args)
    from netpress.encode import read_manifest, summarize

    report = summarize(read_manifest(args.path))
    common.emit(report, args.json, _human(report, args.streams))
    return 0


def _human(r: dict, streams: bool) -> str:
    rows = [_table_row(t) for t in r["tensors"]]
    rows.append({"layer": "total", "weights": sum(t["weights"] for t in r["tensors"]),
                 "codebook_B": r["codebook_bytes"], "total_B": r["file_bytes"], "ratio": f"{r['ratio']:.1f}x"})
    model = (r.get("model") or {}).get("name", "user model")
    arch = (r.get("recipe") or {}).get("architecture") if isinstance(r.get("recipe"), dict) else None
    if isinstance(arch, dict):  # compress --hf: the Hugging Face folder and model type it came from
        model = f"{arch.get('folder') or 'hf model'} ({(arch.get('config') or {}).get('model_type', '?')})"
    lines = [f"{model}: {r['file_bytes']:,} bytes (fp32 {r['fp32_bytes']:,}), ratio {r['ratio']:.1f}x",
             f"  weights {r['weight_bytes']:,} B, index {r['index_bytes']:,} B, codebooks {r['codebook_bytes']:,} B, "
             f"raw tensors {r['raw_bytes']:,} B, manifest+header {r['manifest_bytes']:,} B",
             common.table(rows, COLUMNS)]
    if r.get("metrics"):
        lines.append("metrics: " + ", ".join(f"{k}={v}" for k, v in r["metrics"].items()))
    if streams:
        lines.append(common.table([{k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()}
                                   for s in r["streams"]]))
    return "\n".join(lines)


def _table_row(t: dict) -> dict:
    pos = t["positions"] + (f"(b={t['gap_bits']})" if t.get("gap_bits") else "")
    kept = f"{100 * t['kept_fraction']:.1f}" if t.get("kept_fraction") is not None else ""
    coded = f"{t['weight_bits_coded']:.2f}" if t.get("weight_bits_coded") is not None else ""
    return {"layer": t["name"], "weights": t["weights"], "kept_%": kept, "bits": t["bits"], "coded_bits": coded,
            "positions": pos, "index_bits": f"{t['index_bits']:.2f}", "codebook_B": t["codebook_bytes"],
            "total_B": t["total_bytes"], "ratio": f"{t['ratio']:.1f}x"}


def _run_runtime(args) -> int:
    from netpress.runtime import RuntimeHparams, inspect_runtime

    hp = RuntimeHparams(cache=args.runtime_cache)
    r = inspect_runtime(args.path, hp, **_hf_inputs(args.path, hp.batch_sizes))
    head = (f"runtime plan on {r['machine']} (us per call at batch {'/'.join(map(str, r['batch_sizes']))}); "
            f"resident weights {r['resident_bytes']:,} B vs dense {r['dense_bytes']:,} B")
    lean = r["plan"].get("lean_layers", [])
    head += f"; {len(lean)} lean encoder layers ({lean[0]} ...)" if lean else ""
    common.emit({k: v for k, v in r.items() if k != "layers"}, args.json, head + "\n" + common.table(r["layers"]))
    return 0


def _hf_inputs(path: str, batch_sizes, tokens: int = 32) -> dict:
    """For a Hugging Face file: the rebuilt architecture and random token ids (``tokens`` per sentence) to time
    its layers on; nothing for a registry model (its input_shape serves)."""
    import torch

    from netpress.encode import read_manifest
    from netpress.hf.files import architecture
    from netpress.hf.model import from_spec

    spec = architecture(read_manifest(path, verify=False))
    if spec is None:
        return {}
    vocab = int(spec["config"].get("vocab_size", 1000))
    g = torch.Generator().manual_seed(0)
    inputs = [{"input_ids": torch.randint(vocab, (b, tokens), generator=g),
               "attention_mask": torch.ones(b, tokens, dtype=torch.long)} for b in batch_sizes]
    return {"model": from_spec(spec), "example_inputs": inputs}
