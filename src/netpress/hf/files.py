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


def evaluate(path: str | os.PathLike, folder: str | os.PathLike, text_file: str | os.PathLike, *,
             limit: int | None = None, batch_size: int = 32, max_length: int = 128) -> dict:
    """Embedding agreement of a compressed ``.netp`` encoder with the original model folder, on sentences.

    Args:
        path: the ``.netp`` file (written from a Hugging Face encoder).
        folder: the original model folder (reference model and tokenizer).
        text_file: sentences, one per line.
        limit: use at most this many sentences.
        batch_size: sentences per batch.
        max_length: token truncation length.

    Returns:
        :func:`~netpress.hf.compare_embeddings`' metrics plus ``sentences``.

    Raises:
        ConfigError / DataError: missing folder, no sentences, a file that is not a Hugging Face model, or
            embeddings of different sizes; before any model runs.

    Example:
        >>> netpress.hf.evaluate("minilm.netp", "all-MiniLM-L6-v2", "held_out.txt")["cosine_mean"]
        0.99...
    """
    from netpress.hf.model import check_folder, load_folder
    from netpress.hf.quality import compare_embeddings, embed
    from netpress.hf.text import TextInputs, read_sentences

    check_folder(folder)
    sentences = read_sentences(text_file, limit=limit)
    compressed = load(path)
    original, tokenizer = load_folder(folder)
    inputs = TextInputs(sentences, tokenizer, batch_size, max_length)
    ref, new = embed(original, inputs), embed(compressed, inputs)
    if ref.shape != new.shape:
        raise ConfigError(f"{str(path)!r} gives embeddings of size {new.shape[1]}, the folder's model {ref.shape[1]}: "
                          "not compressed from this folder")
    return {**compare_embeddings(ref, new), "sentences": len(sentences)}
