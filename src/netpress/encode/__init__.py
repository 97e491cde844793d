"""Encoding into the ``.netp`` file: relative sparse indices, canonical Huffman and ANS coding, the container.

Example:
    >>> import netpress
    >>> report = netpress.save(model, "model.netp", coder="huffman", metrics={"test_accuracy": 0.89})
    >>> model = netpress.load("model.netp")
"""
from netpress.encode.api import load, load_state, read_manifest, save, summarize
from netpress.encode.errors import NetpressFormatError

__all__ = ["save", "load", "load_state", "read_manifest", "summarize", "NetpressFormatError"]
