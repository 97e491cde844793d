"""Hugging Face / sentence-transformers models (optional extra: ``pip install 'netpress[hf]'``).

``transformers`` is imported only when a model is loaded or rebuilt; without it those calls raise a
:class:`~netpress.errors.ConfigError` naming the extra.

Example:
    >>> import netpress, netpress.hf
    >>> encoder, tokenizer = netpress.hf.load_folder("all-MiniLM-L6-v2")          # offline
    >>> calib = netpress.hf.TextInputs(netpress.hf.read_sentences("calib.txt"), tokenizer)
    >>> result = netpress.compress_pretrained(encoder, calib, "pretrained-4bit", out="minilm.netp")
    >>> same = netpress.hf.load("minilm.netp")                                    # rebuilt from the stored config
"""
from netpress.hf.files import architecture, evaluate, is_hf_file, load
from netpress.hf.model import POOLINGS, SentenceEncoder, check_folder, from_spec, load_folder, pool
from netpress.hf.quality import EmbeddingQuality, compare_embeddings, embed, spearman
from netpress.hf.text import TextInputs, read_sentences

__all__ = ["architecture", "evaluate", "is_hf_file", "load", "POOLINGS", "SentenceEncoder", "check_folder", "from_spec",
           "load_folder", "pool", "EmbeddingQuality", "compare_embeddings", "embed", "spearman", "TextInputs",
           "read_sentences"]
