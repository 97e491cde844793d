"""``netpress decompress model.netp --out model.safetensors``: the decoded tensors as plain safetensors."""
from __future__ import annotations

import json
import os
from pathlib import Path

from netpress.cli import common


def add_parser(sub) -> None:
    p = sub.add_parser("decompress", help="decode a .netp file into a .safetensors file (plain-named tensors)")
    p.add_argument("path", help="the .netp file")
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    common.add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from safetensors.torch import save_file

    from netpress.encode import load_state

    state, manifest = load_state(args.path)
    state = {k: v.contiguous() for k, v in state.items()}
    meta = {"format": "netpress", "model": json.dumps(manifest.get("model")),
            "metrics": json.dumps(manifest.get("metrics", {}))}
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, out)
    result = {"path": str(out), "tensors": len(state), "bytes": out.stat().st_size,
              "parameters": sum(v.numel() for v in state.values())}
    common.emit(result, args.json, f"wrote {out} ({result['tensors']} tensors, {result['bytes']:,} bytes)")
    return 0
