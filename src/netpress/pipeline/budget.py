"""Choosing where along a pruning path an accuracy budget is spent, from noisy measurements.

A budget schedule prunes along a path (each round from the last) and measures every round's paired validation
drop ``d_r`` with standard error ``s_r``. Single measurements are too noisy to trust one by one (on 5,000
validation images ``s_r`` is about 0.2 pt, comparable to a 0.3 pt budget), but the true drop only grows along the
path, so the measurements are smoothed together: a weighted isotonic (nondecreasing) fit pools neighbouring rounds
(weights ``1 / s_r**2``), and the chosen round is the last whose fitted drop plus ``confidence`` pooled standard
errors fits the budget.

Example:
    >>> fit = isotonic([0.0, 0.002, 0.001, 0.004], [1.0, 1.0, 1.0, 1.0])
    >>> [round(v, 4) for v in fit.values]
    [0.0, 0.0015, 0.0015, 0.004]
"""
from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class IsotonicFit:
    """A nondecreasing least-squares fit.

    Attributes:
        values: fitted value of each point.
        weights: total weight of the block (pooled points) each point belongs to.
    """

    values: list[float]
    weights: list[float]


def isotonic(values: list[float], weights: list[float]) -> IsotonicFit:
    """Weighted isotonic regression (pool adjacent violators): the nondecreasing sequence minimising
    ``sum w_i (y_i - f_i)**2``. Equal neighbours are pooled too (the fit is the same): they measure one drop, so
    their weights add.

    Args:
        values: measurements in path order.
        weights: positive weights, one per value.

    Returns:
        :class:`IsotonicFit`.
    """
    blocks: list[list[float]] = []  # [mean, weight, count]
    for y, w in zip(values, weights):
        blocks.append([float(y), float(w), 1])
        while len(blocks) > 1 and blocks[-2][0] >= blocks[-1][0]:
            (m1, w1, c1), (m2, w2, c2) = blocks[-2], blocks.pop()
            blocks[-1] = [(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2]
    fitted, pooled = [], []
    for mean, weight, count in blocks:
        fitted += [mean] * count
        pooled += [weight] * count
    return IsotonicFit(fitted, pooled)


def choose_round(drops: list[float], ses: list[float], budget: float, confidence: float,
                 floor_se: float) -> tuple[int, list[float], list[float]]:
    """The last round within budget after smoothing.

    Args:
        drops: each round's measured drop (fraction), in path order.
        ses: their standard errors.
        budget: the allowed drop.
        confidence: pooled standard errors added to the fitted drop.
        floor_se: the smallest standard error a round is given (a round with no changed example has ``se = 0``;
            without a floor it would outweigh every other).

    Returns:
        ``(index, fitted drops, pooled standard errors)``; ``index`` is -1 when no round fits.
    """
    weights = [1.0 / max(s, floor_se) ** 2 for s in ses]
    fit = isotonic(drops, weights)
    pooled = [1.0 / math.sqrt(w) for w in fit.weights]  # rounds share the examples: optimistic, hence `confidence`
    chosen = -1
    for i, (f, s) in enumerate(zip(fit.values, pooled)):
        if f + confidence * s <= budget + 1e-12:
            chosen = i
    return chosen, fit.values, pooled
