"""``netpress decompress model.netp --out model.safetensors``: the decoded tensors as plain safetensors."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from netpress.cli import common


def add_parser(sub) -> None:
    p = sub.add_parser("decompress", help="decode a .netp file into a .safetensors file (plain-named tensors)")
    p.add_argument("path", help="the .netp file")
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    common.add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from netpress.encode import load_state

    out = _check_out(Path(args.out))
    state, manifest = load_state(args.path)
    meta = {"format": "netpress", "model": json.dumps(manifest.get("model")),
            "metrics": json.dumps(manifest.get("metrics") or {})}
    _write(out, {k: v.contiguous() for k, v in state.items()}, meta)
    result = {"path": str(out), "tensors": len(state), "bytes": out.stat().st_size,
              "parameters": sum(v.numel() for v in state.values())}
    common.emit(result, args.json, f"wrote {out} ({result['tensors']} tensors, {result['bytes']:,} bytes)")
    return 0


def _check_out(out: Path) -> Path:
    """``--out`` must be a file path in an existing folder (checked before decoding)."""
    from netpress.errors import ConfigError

    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file path")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
    return out


def _write(out: Path, state: dict, meta: dict) -> None:
    """safetensors to a unique temporary file beside ``out``, then an atomic rename; no temp file survives."""
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
