"""netpress: prune, quantize, share and entropy-code neural networks into a compact file.

Top-level shortcuts (imported lazily):
    ``netpress.save`` / ``netpress.load``: the ``.netp`` container (:mod:`netpress.encode`); ``load(path,
    runtime=...)`` also converts to a runtime form (:mod:`netpress.runtime`, which wraps ``encode.load``).
    ``netpress.compress``: the Deep Compression pipeline (:mod:`netpress.pipeline`).
    ``netpress.compress_pretrained``: one-shot compression of a pretrained model (:mod:`netpress.pipeline.oneshot`).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {"save": "netpress.encode", "load": "netpress.runtime", "compress": "netpress.pipeline",
         "compress_pretrained": "netpress.pipeline"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'netpress' has no attribute {name!r}")
