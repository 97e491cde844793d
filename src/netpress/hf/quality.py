"""Embedding quality of a compressed encoder against the original: cosine, neighbour agreement, rank correlation."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


@torch.no_grad()
def embed(model: nn.Module, inputs: Iterable[dict]) -> torch.Tensor:
    """``model(**batch)`` over every batch, concatenated (float32, CPU)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(**{k: v.to(device) for k, v in batch.items()}).float().cpu() for batch in inputs])


def compare_embeddings(ref: torch.Tensor, new: torch.Tensor) -> dict[str, float]:
    """How well ``new`` embeddings reproduce ``ref`` (same sentences, same order).

    Args:
        ref: ``[n, d]`` embeddings of the original model.
        new: ``[n, d]`` embeddings of the compressed model.

    Returns:
        ``cosine_mean`` / ``cosine_min`` (row-wise cosine), ``nn_agreement`` (fraction of sentences whose nearest
        other sentence is the same under both), ``spearman`` (rank correlation of all pairwise cosine
        similarities; needs n >= 3).

    Example:
        >>> compare_embeddings(ref, ref)["cosine_min"]
        1.0
    """
    cos = nn.functional.cosine_similarity(ref, new, dim=1)
    out = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}
    if len(ref) >= 3:
        sim_ref, sim_new = _similarities(ref), _similarities(new)
        eye = torch.eye(len(ref), dtype=torch.bool)
        nn_ref = sim_ref.masked_fill(eye, -2).argmax(1)
        nn_new = sim_new.masked_fill(eye, -2).argmax(1)
        upper = torch.triu_indices(len(ref), len(ref), offset=1)
        out["nn_agreement"] = float((nn_ref == nn_new).double().mean())
        out["spearman"] = spearman(sim_ref[upper[0], upper[1]], sim_new[upper[0], upper[1]])
    return out


def _similarities(x: torch.Tensor) -> torch.Tensor:
    x = nn.functional.normalize(x.double(), dim=1)
    return x @ x.T


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors (average ranks for ties)."""
    ra, rb = _ranks(a.double()), _ranks(b.double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp(min=1e-300))


def _ranks(x: torch.Tensor) -> torch.Tensor:
    values, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return ((ends - (counts.double() - 1) / 2))[inverse]


class EmbeddingQuality:
    """Quality function for one-shot compression: embedding agreement with the original model on fixed inputs.

    The reference embeddings are computed once, at construction (pass the original, uncompressed model).

    Args:
        reference: the original encoder.
        inputs: a re-iterable of tokenizer-output dicts (e.g. :class:`netpress.hf.TextInputs`), ideally held
            apart from the calibration inputs.

    Example:
        >>> quality = EmbeddingQuality(encoder, TextInputs(held_out, tokenizer))
        >>> quality(compressed)["cosine_mean"]
        0.991...
    """

    def __init__(self, reference: nn.Module, inputs: Iterable[dict]):
        self.inputs = inputs
        self.reference = embed(reference, inputs)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        return compare_embeddings(self.reference, embed(model, self.inputs))
