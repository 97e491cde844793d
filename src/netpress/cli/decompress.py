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
    add_max_elements(p)
    common.add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from netpress.encode import load_state

    out = _check_out(Path(args.out))
    state, manifest = load_state(args.path, max_elements=max_elements(args))
    meta = {"format": "netpress", "model": json.dumps(manifest.get("model")),
            "metrics": json.dumps(manifest.get("metrics") or {})}
    _write(out, {k: v.contiguous() for k, v in state.items()}, meta)
    result = {"path": str(out), "tensors": len(state), "bytes": out.stat().st_size,
              "parameters": sum(v.numel() for v in state.values())}
    common.emit(result, args.json, f"wrote {out} ({result['tensors']} tensors, {result['bytes']:,} bytes)")
    return 0


def add_max_elements(p) -> None:
    p.add_argument("--max-elements", type=int, default=None, metavar="N",
                   help="decode at most N tensor elements (default 2**16 + 256 per file byte: enough for 1000x "
                        "compression; raise it for extremely sparse models)")


def max_elements(args) -> int | None:
    """``--max-elements``, checked before any work."""
    from netpress.errors import ConfigError

    if args.max_elements is not None and args.max_elements < 1:
        raise ConfigError(f"--max-elements must be a positive integer, got {args.max_elements}")
    return args.max_elements


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
