"""Sibling fusion: int8 Linear layers that read the same input tensor (attention's query/key/value) run as one
GEMM over their concatenated rows: the activation is quantized once and the larger GEMM uses the cores better.

Each member is replaced by a :class:`FusedMember`; the first member called computes every member's output and
keeps them until each sibling has taken its slice. A member called with a different tensor than the one cached
recomputes, so results never depend on call order.
"""
from __future__ import annotations

import torch
from torch import nn

from netpress.runtime.kernels import REDUCE_RANGE, prepack
from netpress.runtime.weights import Int8, int8_rows


class FusedInt8Group(nn.Module):
    """One int8 GEMM for several Linear layers sharing an input.

    Args:
        members: the members' :class:`Int8` weights (same ``in_features``) and biases, in order.
    """

    def __init__(self, weights: list[Int8], biases: list[torch.Tensor | None], in_features: int):
        super().__init__()
        self.in_features = in_features
        self.sizes = [w.q.shape[0] for w in weights]
        q = torch.cat([w.q for w in weights])
        scale = torch.cat([w.scale for w in weights])
        bias = None if all(b is None for b in biases) else torch.cat(
            [b if b is not None else torch.zeros(n) for b, n in zip(biases, self.sizes)])
        self._packed = prepack(Int8(q, scale, 0.0, True), bias)
        self._bytes = q.numel() + 16 * len(scale) + (0 if bias is None else 4 * bias.numel())
        self._x = None
        self._outs: tuple = ()
        self._left: set[int] = set()

    def output(self, x: torch.Tensor, index: int) -> torch.Tensor:
        if self._x is not x or index not in self._left:
            self._outs = self.forward(x)
            self._x, self._left = x, set(range(len(self.sizes)))
        self._left.discard(index)
        out = self._outs[index]
        if not self._left:
            self._x, self._outs = None, ()
        return out

    def forward(self, x: torch.Tensor) -> tuple:
        """All members' outputs at once (used for timing)."""
        return torch.ops.quantized.linear_dynamic(x.float(), self._packed, REDUCE_RANGE).split(self.sizes, -1)

    def opaque_bytes(self) -> int:
        return self._bytes


class FusedMember(nn.Module):
    """Stands in for one Linear of a :class:`FusedInt8Group`."""

    def __init__(self, group: FusedInt8Group, index: int):
        super().__init__()
        self.group, self.index = group, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.group.output(x, self.index)

    def extra_repr(self) -> str:
        return f"member {self.index} of {len(self.group.sizes)}, out_features={self.group.sizes[self.index]}"


def fuse(linears: list[nn.Linear]) -> list[FusedMember]:
    """Stand-ins for decoded Linear layers of one input width whose weights are on (or allowed onto) int8."""
    weights = [int8_rows(m.weight) for m in linears]
    biases = [None if m.bias is None else m.bias.detach().float() for m in linears]
    group = FusedInt8Group(weights, biases, linears[0].in_features)
    return [FusedMember(group, i) for i in range(len(linears))]
