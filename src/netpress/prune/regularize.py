"""Pruning as an objective: L1, group lasso and selective weight decay as a loss wrapper for the trainer.

Example:
    >>> loss = RegularizedLoss(net, RegularizerHparams(group_lasso=1e-4, groups="out"))
    >>> train(net, splits, hp, loss_fn=loss)
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from netpress.hparams import Hparams, require
from netpress.prune.masks import prunable_tensors
from netpress.train import cross_entropy

GROUPS = ("out", "in")


@dataclasses.dataclass(frozen=True)
class RegularizerHparams(Hparams):
    """Penalty strengths (all >= 0).

    Attributes:
        l1: sum |w| (drives weights to zero, Han-style sparsity).
        group_lasso: sum over groups of ||w_g||_2 (Wen et al. 2016), which zeros whole groups.
        groups: ``out`` = one group per output neuron/filter (rows), ``in`` = per input neuron/channel.
        l2: selective weight decay 0.5 * sum w^2 on the selected tensors only.
    """

    l1: float = 0.0
    group_lasso: float = 0.0
    groups: str = "out"
    l2: float = 0.0

    def validate(self) -> None:
        for k in ("l1", "group_lasso", "l2"):
            require(getattr(self, k) >= 0, f"{k} must be >= 0, got {getattr(self, k)}")
        require(self.groups in GROUPS, f"unknown groups {self.groups!r}; known: {', '.join(GROUPS)}")


def group_norms(w: torch.Tensor, groups: str = "out") -> torch.Tensor:
    """L2 norm of each group of ``w``: rows (``out``) or input columns/channels (``in``)."""
    w = w if groups == "out" else w.transpose(0, 1)
    return w.reshape(w.shape[0], -1).norm(dim=1)


def penalty(model: nn.Module, hp: RegularizerHparams, names=None, exclude=()) -> torch.Tensor:
    """The regularisation term on the effective (masked) tensors."""
    total = torch.zeros(())
    for m, a in prunable_tensors(model, names, exclude).values():
        w = getattr(m, a)
        if hp.l1:
            total = total + hp.l1 * w.abs().sum()
        if hp.group_lasso and w.dim() > 1:
            total = total + hp.group_lasso * group_norms(w, hp.groups).sum()
        if hp.l2:
            total = total + 0.5 * hp.l2 * (w * w).sum()
    return total


class RegularizedLoss:
    """``loss_fn`` for :func:`netpress.train.train`: the base loss plus :func:`penalty`.

    Args:
        model: the model being trained (its tensors are penalised).
        hp: strengths.
        names, exclude: tensor selection (default: all Linear/Conv weights).
        base: the data loss ``f(outputs, batch)``.
    """

    def __init__(self, model: nn.Module, hp: RegularizerHparams, names=None, exclude=(), base=cross_entropy):
        self.model, self.hp, self.names, self.exclude, self.base = model, hp, names, exclude, base
        prunable_tensors(model, names, exclude)  # validate names now

    def __call__(self, outputs: torch.Tensor, batch) -> torch.Tensor:
        return self.base(outputs, batch) + penalty(self.model, self.hp, self.names, self.exclude).to(outputs.device)
