"""Sensitivity analysis (Han et al. 2015): prune each layer alone over a sparsity grid, no retraining, evaluate.

Example:
    >>> rows = sensitivity(net, splits)
    >>> plot_sensitivity(rows, "sens.png")  # netpress.report.pruning
"""
from __future__ import annotations

import copy
from typing import Iterable

from torch import nn

from netpress.prune.core import prune
from netpress.prune.masks import prunable_tensors
from netpress.prune.scope import check_fraction
from netpress.train import evaluate

DEFAULT_GRID = (0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


def sensitivity(model: nn.Module, data, grid: Iterable[float] = DEFAULT_GRID, *, score="magnitude",
                names=None, exclude=(), split: str = "val") -> list[dict]:
    """Accuracy after pruning one layer at a time to each sparsity of ``grid`` (the model is not changed).

    Args:
        model: a trained model.
        data: DataSplits; evaluated on ``split`` (``val``, falling back to ``test`` when there is no val).
        grid: sparsities in [0, 1).
        score: a weight score (data-driven ones get ``data``).
        names, exclude: layers to analyse (default every Linear/Conv weight).
        split: ``val`` or ``test``.

    Returns:
        Rows ``{layer, sparsity, accuracy, loss}``.
    """
    grid = [check_fraction(s) for s in grid]
    layers = list(prunable_tensors(model, names, exclude))
    ds = data.val if split == "val" and data.val is not None else data.test
    rows = []
    for layer in layers:
        for s in grid:
            trial = copy.deepcopy(model)
            prune(trial, s, score=score, names=[layer], scope="local", data=data)
            r = evaluate(trial, ds)
            rows.append({"layer": layer, "sparsity": s, "accuracy": r.accuracy, "loss": r.loss})
    return rows
