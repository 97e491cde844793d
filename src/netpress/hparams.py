"""Typed hyperparameter dataclasses, hashed by their non-default values (as open_lth does).

Adding a new field with a default never changes an existing hash, so old runs stay findable.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, TypeVar

from netpress.errors import ConfigError

H = TypeVar("H", bound="Hparams")


@dataclasses.dataclass(frozen=True)
class Hparams:
    """Base for every component's hyperparameters. Subclasses add fields and ``validate``."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` on a nonsensical value. Override in subclasses."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def non_default(self) -> dict[str, Any]:
        """Fields whose value differs from the field default."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING
            )
            if value != default:
                out[f.name] = value
        return out

    def replace(self: H, **changes: Any) -> H:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls: type[H], values: dict[str, Any]) -> H:
        """Build from a dict, rejecting unknown keys with their names."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}; known: {sorted(names)}")
        return cls(**values)


def hparams_hash(kind: str, *parts: Hparams) -> str:
    """Short stable hash of ``kind`` and the non-default values of each part."""
    payload = {"kind": kind, "parts": [[type(p).__name__, p.non_default()] for p in parts]}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition``."""
    if not condition:
        raise ConfigError(message)
