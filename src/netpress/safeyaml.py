"""YAML for configuration files that may come from anyone: plain data, bounded size and depth, no aliases.

``yaml.safe_load`` builds no objects, but an alias bomb (anchors referring to anchors, a 600-byte file expanding
to gigabytes) or 50,000 nested brackets (a ``RecursionError``) still get through. This loader refuses anchors
and aliases outright (a configuration never needs them), bounds nesting and size, and needs UTF-8.

Example:
    >>> load("stages: [{prune: {sparsity: 0.9}}]")
    {'stages': [{'prune': {'sparsity': 0.9}}]}
"""
from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent

from netpress.errors import ConfigError

MAX_BYTES = 1 << 20
MAX_DEPTH = 64


class YamlError(ConfigError):
    """A configuration document that is not plain, bounded YAML."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects anchors/aliases and documents nested deeper than ``MAX_DEPTH``."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent) or (isinstance(event, (ScalarEvent, CollectionStartEvent)) and event.anchor):
            line = event.start_mark.line + 1
            raise YamlError(f"line {line}: YAML anchors and aliases (& and *) are not allowed")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlError(f"line {event.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load(text: str | bytes, max_bytes: int = MAX_BYTES) -> Any:
    """Parse one YAML document of plain data (mappings, lists, scalars).

    Args:
        text: the document; bytes must be UTF-8.
        max_bytes: size limit.

    Returns:
        The parsed value.

    Raises:
        YamlError: not UTF-8, too large, invalid YAML, anchors/aliases, or too deeply nested.

    Example:
        >>> load(b"a: [1, 2]")
        {'a': [1, 2]}
    """
    if len(text) > max_bytes:
        raise YamlError(f"{len(text):,} bytes, over the {max_bytes:,}-byte limit")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlError(f"not UTF-8 text (byte {exc.start}: {text[exc.start:exc.start + 1]!r})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise YamlError(f"nested deeper than {MAX_DEPTH} levels") from None
