"""How ``src/netpress/encode/manifest_v1.dict`` was made (format 1.3; docs/format.md section 1.1).

The dictionary is frozen: files written with it can only be read with the very same bytes, so this script is a
record, not a build step (rerunning it gives different bytes; ``tests/test_manifest_dict.py`` pins the committed
file's SHA-256). It is zstd "raw content": text whose substrings the manifest compressor may copy. Its content is
the manifests of small models saved every way netpress saves them (k-means / ECSQ / uniform codes, every coder
and position method, raw tensors, activation quantizers) and the built-in recipes as the pipeline stores them,
with the most common text last (zstd prefers near matches).

Usage: python scripts/make_manifest_dict.py OUT
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

from netpress.encode import container, save
from netpress.models import ModelHparams, build_model
from netpress.pipeline import load_recipe
from netpress.pipeline.oneshot import ONESHOT_STAGES, PRETRAINED
from netpress.pipeline.recipe import BUILTIN
from netpress.quantize import PTQHparams, ecsq_weights, ptq, share_weights


def _sparsify(model, keep=0.1):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("weight"):
                p.mul_(torch.rand_like(p) < keep)
    return model


def _manifests() -> list[bytes]:
    torch.manual_seed(0)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(["lenet300", "lenet5"]):
            variants = [
                ("huffman", lambda m: share_weights(_sparsify(m), 5)),
                ("context", lambda m: ecsq_weights(_sparsify(m, 0.05), 5, 0.01, relative=True)),
                ("ans", lambda m: _sparsify(m, 0.3)),
                ("packed", lambda m: share_weights(_sparsify(m, 0.2), 4)),
                ("auto", lambda m: ptq(m, torch.utils.data.TensorDataset(torch.randn(64, 1, 28, 28),
                                                                          torch.zeros(64, dtype=torch.long)),
                                       PTQHparams())),
            ]
            for coder, make in variants:
                model = make(build_model(ModelHparams(name), (1, 28, 28), 10))
                path = Path(tmp) / f"{name}_{coder}.netp"
                recipe = load_recipe("budget" if i else "deep-compression").to_dict()
                save(model, path, coder=coder, recipe=recipe, metrics={"test_accuracy": 0.9, "train_accuracy": 0.9})
                manifest, _, _ = container.parse(path.read_bytes())
                out.append(json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode())
    return out


def main(out: str) -> None:
    recipes = [json.dumps(load_recipe(n, PRETRAINED, ONESHOT_STAGES).to_dict(), separators=(",", ":"),
                          sort_keys=True).encode() for n in PRETRAINED]
    recipes += [json.dumps(load_recipe(n).to_dict(), separators=(",", ":"), sort_keys=True).encode() for n in BUILTIN]
    Path(out).write_bytes(b"".join(recipes + _manifests()))
    print(f"{out}: {Path(out).stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
