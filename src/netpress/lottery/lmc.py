"""Linear mode connectivity: test error along the straight line between two trained networks.

Frankle et al. 2020 ("Linear Mode Connectivity and the Lottery Ticket Hypothesis"): train two copies of one
network from the same starting point with different data orders; the network is *stable* when the error does not
rise along the line between them. The barrier is the maximum error on the path minus the mean of the endpoints'.
"""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn
from torch.utils.data import Dataset

from netpress.errors import ConfigError
from netpress.prune.masks import load_plain_state_dict, plain_state_dict
from netpress.train import evaluate


@dataclasses.dataclass
class Interpolation:
    """Errors along the line ``(1 - alpha) * a + alpha * b``.

    Attributes:
        alphas: interpolation coefficients from 0 (model a) to 1 (model b).
        errors: test error (1 - accuracy) at each alpha.
        losses: test loss at each alpha.
        barrier: ``max(errors) - mean(errors[0], errors[-1])`` (>= 0).
    """

    alphas: list[float]
    errors: list[float]
    losses: list[float]

    @property
    def barrier(self) -> float:
        return error_barrier(self.errors)

    def to_dict(self) -> dict:
        return {"alphas": self.alphas, "errors": self.errors, "losses": self.losses, "barrier": self.barrier}


def error_barrier(errors: list[float]) -> float:
    """Max error along a path minus the mean of its two endpoints.

    Args:
        errors: errors at the points of the path, endpoints first and last.

    Returns:
        The barrier (0 when no point is worse than the endpoints' mean).

    Example:
        >>> round(error_barrier([0.1, 0.3, 0.1]), 6)
        0.2
    """
    if len(errors) < 2:
        raise ConfigError("a path needs at least two points")
    return max(errors) - (errors[0] + errors[-1]) / 2


def interpolate_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * a + alpha * b`` for floating tensors (integer buffers are taken from ``a``).

    Args:
        a, b: plain-named state dicts with the same keys.
        alpha: 0 gives ``a``, 1 gives ``b``.

    Returns:
        The interpolated state dict.

    Example:
        >>> interpolate_state({"w": torch.zeros(2)}, {"w": torch.ones(2)}, 0.25)["w"]
        tensor([0.2500, 0.2500])
    """
    if set(a) != set(b):
        raise ConfigError(f"the two networks differ in tensors: {sorted(set(a) ^ set(b))[:5]}")
    return {k: (1 - alpha) * a[k] + alpha * b[k] if a[k].is_floating_point() else a[k].clone() for k in a}


@torch.no_grad()
def linear_interpolation(model_a: nn.Module, model_b: nn.Module, data: Dataset, points: int = 30) -> Interpolation:
    """Evaluate the networks on the line between ``model_a`` and ``model_b`` (same architecture; masks are kept,
    so the line between two tickets with one mask stays inside that mask).

    Args:
        model_a, model_b: trained networks of the same architecture (possibly masked).
        data: the evaluation set (usually the test set).
        points: evaluation points including both endpoints (>= 2).

    Returns:
        :class:`Interpolation` with the errors and the barrier.

    Example:
        >>> linear_interpolation(net, copy.deepcopy(net), splits.test, points=5).barrier
        0.0
    """
    if points < 2:
        raise ConfigError(f"points must be >= 2, got {points}")
    sa, sb = plain_state_dict(model_a), plain_state_dict(model_b)
    probe = copy.deepcopy(model_a)
    alphas = [i / (points - 1) for i in range(points)]
    errors, losses = [], []
    for alpha in alphas:
        load_plain_state_dict(probe, interpolate_state(sa, sb, alpha))
        result = evaluate(probe, data)
        errors.append(1 - result.accuracy)
        losses.append(result.loss)
    return Interpolation(alphas, errors, losses)
