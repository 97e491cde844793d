"""The contract between quantizers and the encoder: a weight as integer indices into a codebook.

Every quantizer that shares or discretises weights can describe each quantized tensor as :class:`Codes`.
The encoder (:mod:`netpress.encode`) stores exactly these, and ``Codes.decode()`` rebuilds the float tensor
bit-identically to what the quantized model computes.
"""
from __future__ import annotations

import dataclasses

import torch

PRUNED = -1  # index of a weight that is exactly zero because it was pruned


@dataclasses.dataclass
class Codes:
    """A quantized tensor.

    Attributes:
        indices: int64 tensor of the weight's shape; ``PRUNED`` (-1) marks pruned (zero) positions.
        codebook: float32 values, shape ``[k]`` (one table for the tensor) or ``[channels, k]`` (one per slice
            along ``axis``).
        bits: bits per index (k <= 2**bits).
        axis: the channel axis when the codebook is per channel, else None.
        method: the quantizer that made it (``kmeans``, ``uniform``, ``binary``, ...), for reports.
    """

    indices: torch.Tensor
    codebook: torch.Tensor
    bits: int
    axis: int | None = None
    method: str = "kmeans"

    def __post_init__(self) -> None:
        if self.codebook.dim() not in (1, 2):
            raise ValueError(f"codebook must be 1-D or 2-D, got shape {tuple(self.codebook.shape)}")
        if self.codebook.dim() == 2 and self.axis is None:
            raise ValueError("a per-channel (2-D) codebook needs the channel axis")

    def decode(self) -> torch.Tensor:
        """The float tensor: ``codebook[indices]`` with zeros at pruned positions."""
        return decode_indices(self.indices, self.codebook, self.axis)


def decode_indices(indices: torch.Tensor, codebook: torch.Tensor, axis: int | None = None) -> torch.Tensor:
    """Gather ``codebook`` at ``indices`` (per channel along ``axis`` when the codebook is 2-D); -1 -> 0.

    This is the single place a codebook lookup happens, so quantized models and decoded files agree bit for bit.
    """
    pruned = indices < 0
    safe = indices.clamp_min(0)
    if codebook.dim() == 1:
        out = codebook[safe]
    else:
        moved = safe.movedim(axis, 0)
        flat = moved.reshape(moved.shape[0], -1)
        out = torch.gather(codebook, 1, flat).reshape(moved.shape).movedim(0, axis)
    return out.masked_fill(pruned, 0.0)
