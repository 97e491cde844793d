"""Rebuild a Hugging Face encoder from a ``.netp`` file: the architecture from the stored config, then the weights."""
from __future__ import annotations

import os

from netpress.errors import ConfigError
from netpress.hf.model import SPEC_KIND, SentenceEncoder, from_spec


def architecture(manifest: dict) -> dict | None:
    """The Hugging Face architecture spec stored in a manifest's recipe, or None if the file holds another model."""
    recipe = manifest.get("recipe")
    spec = recipe.get("architecture") if isinstance(recipe, dict) else None
    return spec if isinstance(spec, dict) and spec.get("kind") == SPEC_KIND else None


def is_hf_file(path: str | os.PathLike) -> bool:
    """Whether a ``.netp`` file holds a Hugging Face encoder (reads the manifest only)."""
    from netpress.encode import read_manifest

    return architecture(read_manifest(path, verify=False)) is not None


def load(path: str | os.PathLike) -> SentenceEncoder:
    """Load a ``.netp`` file written from a Hugging Face encoder, without the original weights.

    The architecture is rebuilt from the config stored in the file (``AutoModel.from_config``), then the decoded
    weights are loaded; outputs are bit-identical to the compressed model that was saved. The tokenizer is not
    stored: use the original folder's.

    Args:
        path: the ``.netp`` file.

    Returns:
        A :class:`SentenceEncoder` in eval mode.

    Raises:
        ConfigError: the file does not hold a Hugging Face model, or the ``hf`` extra is missing.
        NetpressFormatError: the file is malformed.

    Example:
        >>> encoder = netpress.hf.load("minilm.netp")
        >>> encoder(**tokenizer(["a sentence"], return_tensors="pt")).shape
        torch.Size([1, 384])
    """
    import netpress
    from netpress.encode import read_manifest

    spec = architecture(read_manifest(path))
    if spec is None:
        raise ConfigError(f"{str(path)!r} does not hold a Hugging Face model (no architecture in its recipe)")
    return netpress.load(path, model=from_spec(spec))
