"""Truncated-SVD factorization of one Linear or Conv2d layer, and per-layer rank selection.

A Linear ``y = W x + b`` with ``W`` (m x n) becomes ``Linear(n, k, bias=False)`` then ``Linear(k, m)`` with
weights ``sqrt(S_k) V_k^T`` and ``U_k sqrt(S_k)`` (the bias on the second), the Frobenius-optimal rank-k
approximation (Eckart-Young): ``||W - W_k||_F^2 = sum_{i>k} s_i^2``.

A Conv2d is factorized over channels: its weight reshaped to ``C_out x (C_in kh kw)`` is approximated the same
way, giving a ``k``-filter conv with the original kernel, stride, padding and dilation, then a 1x1 conv to
``C_out`` channels carrying the bias. (Spatial factorizations are not implemented.)
"""
from __future__ import annotations

import math

import torch
from torch import nn

from netpress.errors import ConfigError


class Factorized(nn.Sequential):
    """Two layers replacing one: ``first`` (n -> k, no bias) then ``second`` (k -> m, original bias).

    Its state dict names are ``'0.weight'``, ``'1.weight'``, ``'1.bias'`` under the replaced module's name.
    """

    def __init__(self, first: nn.Module, second: nn.Module, rank: int):
        super().__init__(first, second)
        self.rank = rank


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The layer's weight as an ``m x n`` matrix (a conv's filters flattened to rows)."""
    return layer.weight.detach().reshape(layer.weight.shape[0], -1)


def factorizable(layer: nn.Module) -> bool:
    """True for nn.Linear and groups=1 nn.Conv2d."""
    return isinstance(layer, nn.Linear) or (isinstance(layer, nn.Conv2d) and layer.groups == 1)


def singular_values(layer: nn.Module) -> torch.Tensor:
    """Singular values (float64, descending) of the layer's weight matrix."""
    return torch.linalg.svdvals(weight_matrix(layer).double())


def rank_for_energy(s: torch.Tensor, energy: float) -> int:
    """Smallest k whose top-k squared singular values hold at least ``energy`` of the total.

    Example:
        >>> rank_for_energy(torch.tensor([3.0, 1.0]), 0.9)
        1
    """
    if not 0 < energy <= 1:
        raise ConfigError(f"energy must be in (0, 1], got {energy}")
    sq = s.double() ** 2
    total = sq.sum()
    if total == 0:
        return 1
    kept = torch.cumsum(sq, 0) / total
    return min(int((kept < energy - 1e-12).sum().item()) + 1, len(s))


def compression_rate(m: int, n: int, k: int) -> float:
    """The SVD compression rate ``mn / k(m+n+1)`` (U_k, V_k and the k singular values stored)."""
    return m * n / (k * (m + n + 1))


def rank_for_ratio(m: int, n: int, ratio: float) -> int:
    """Largest k (>= 1) with ``mn / k(m+n+1) >= ratio``.

    Example:
        >>> rank_for_ratio(300, 100, 2.0)
        37
    """
    if ratio < 1:
        raise ConfigError(f"compression ratio must be >= 1, got {ratio}")
    return max(1, min(min(m, n), math.floor(m * n / (ratio * (m + n + 1)) + 1e-9)))


def _factors(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)`` with ``A`` m x k, ``B`` k x n and ``A @ B`` the best rank-k approximation of ``matrix``."""
    u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]


def check_rank(layer: nn.Module, rank: int, name: str = "layer") -> None:
    """Raise :class:`ConfigError` unless ``1 <= rank <= min(m, n)`` for this layer."""
    m, n = weight_matrix(layer).shape
    if not 1 <= rank <= min(m, n):
        raise ConfigError(f"{name}: rank {rank} is outside [1, min(m, n) = {min(m, n)}] for its {m} x {n} weight")


def factorize_linear(layer: nn.Linear, rank: int) -> Factorized:
    """Replace ``layer`` by two Linears of rank ``rank`` from the truncated SVD of its weight.

    Args:
        layer: an nn.Linear with weight m x n.
        rank: k in [1, min(m, n)].

    Returns:
        :class:`Factorized` (``Linear(n, k, bias=False)``, ``Linear(k, m)``) on the layer's device and dtype.

    Example:
        >>> f = factorize_linear(nn.Linear(784, 300), 40)
        >>> sum(p.numel() for p in f.parameters())
        43660
    """
    check_rank(layer, rank)
    w = layer.weight.detach()
    a, b = _factors(w, rank)
    m, n = w.shape
    first = nn.Linear(n, rank, bias=False, device=w.device, dtype=w.dtype)
    second = nn.Linear(rank, m, bias=layer.bias is not None, device=w.device, dtype=w.dtype)
    _set(first.weight, b)
    _set(second.weight, a)
    if layer.bias is not None:
        _set(second.bias, layer.bias.detach())
    return Factorized(first, second, rank)


def factorize_conv2d(layer: nn.Conv2d, rank: int) -> Factorized:
    """Channel factorization of a Conv2d: ``rank`` filters with the original kernel, then a 1x1 conv.

    Args:
        layer: an nn.Conv2d with ``groups == 1``; its weight is viewed as ``C_out x (C_in kh kw)``.
        rank: k in [1, min(C_out, C_in kh kw)].

    Returns:
        :class:`Factorized` (``Conv2d(C_in, k, (kh, kw), stride, padding, dilation, bias=False)``,
        ``Conv2d(k, C_out, 1)``).

    Example:
        >>> f = factorize_conv2d(nn.Conv2d(20, 50, 5), 10)
    """
    if layer.groups != 1:
        raise ConfigError(f"only groups=1 convolutions can be factorized, got groups={layer.groups}")
    check_rank(layer, rank)
    w = layer.weight.detach()
    c_out, c_in, kh, kw = w.shape
    a, b = _factors(w.reshape(c_out, -1), rank)
    kw_args = dict(device=w.device, dtype=w.dtype)
    first = nn.Conv2d(c_in, rank, (kh, kw), stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                      bias=False, padding_mode=layer.padding_mode, **kw_args)
    second = nn.Conv2d(rank, c_out, 1, bias=layer.bias is not None, **kw_args)
    _set(first.weight, b.reshape(rank, c_in, kh, kw))
    _set(second.weight, a.reshape(c_out, rank, 1, 1))
    if layer.bias is not None:
        _set(second.bias, layer.bias.detach())
    return Factorized(first, second, rank)


def factorize_layer(layer: nn.Module, rank: int) -> Factorized:
    """:func:`factorize_linear` or :func:`factorize_conv2d`, by the layer's type."""
    if isinstance(layer, nn.Linear):
        return factorize_linear(layer, rank)
    if isinstance(layer, nn.Conv2d):
        return factorize_conv2d(layer, rank)
    raise ConfigError(f"cannot factorize a {type(layer).__name__}; only Linear and Conv2d")


def _set(param: nn.Parameter, value: torch.Tensor) -> None:
    with torch.no_grad():
        param.copy_(value.to(param.dtype))
