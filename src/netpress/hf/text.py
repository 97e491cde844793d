"""Sentences from a text file, tokenized lazily in batches (one batch in memory at a time)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import torch

from netpress.errors import DataError


def read_sentences(path: str | os.PathLike, limit: int | None = None) -> list[str]:
    """The non-blank lines of a UTF-8 text file, stripped (one sentence per line).

    Args:
        path: the text file.
        limit: keep at most this many sentences (the first ones).

    Returns:
        The sentences.

    Raises:
        DataError: the file is missing, unreadable, or has no sentence.

    Example:
        >>> read_sentences("calib.txt", limit=256)[:1]
        ['A cat sat on the mat.']
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"no text file {str(path)!r}")
    sentences: list[str] = []
    try:
        with file.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    sentences.append(line.strip())
                if limit is not None and len(sentences) >= limit:
                    break
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc}") from None
    if not sentences:
        raise DataError(f"{str(path)!r} has no sentences (one per line expected)")
    return sentences


class TextInputs:
    """A re-iterable of tokenizer-output dicts (``input_ids``, ``attention_mask``, ...), one per batch.

    Batches are tokenized when iterated, padded to their longest sentence, truncated at ``max_length``.

    Args:
        sentences: the texts.
        tokenizer: a Hugging Face tokenizer.
        batch_size: sentences per batch.
        max_length: truncation length in tokens.

    Example:
        >>> inputs = TextInputs(read_sentences("calib.txt"), tokenizer, batch_size=32)
        >>> embeddings = torch.cat([encoder(**batch) for batch in inputs])
    """

    def __init__(self, sentences: Sequence[str], tokenizer, batch_size: int = 32, max_length: int = 128):
        if not sentences:
            raise DataError("no sentences to tokenize")
        if batch_size < 1 or max_length < 2:
            raise DataError(f"batch_size must be >= 1 and max_length >= 2, got {batch_size} and {max_length}")
        self.sentences, self.tokenizer = list(sentences), tokenizer
        self.batch_size, self.max_length = batch_size, max_length

    def __len__(self) -> int:
        return -(-len(self.sentences) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for i in range(0, len(self.sentences), self.batch_size):
            batch = self.tokenizer(self.sentences[i:i + self.batch_size], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt")
            yield dict(batch)
