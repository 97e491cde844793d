"""Lazy imports of the optional ``hf`` extra (transformers, sentence-transformers)."""
from __future__ import annotations

import importlib
from types import ModuleType

from netpress.errors import ConfigError

INSTALL = "pip install 'netpress[hf]'"


def require(module: str = "transformers") -> ModuleType:
    """Import ``module`` from the ``hf`` extra, or raise a :class:`ConfigError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"Hugging Face models need {module.replace('_', '-')}: {INSTALL}") from None
