"""Soft weight-sharing (Ullrich, Meeds & Welling 2017): a Gaussian-mixture prior learned with the weights.

Training adds ``tau * prior(flat_weights(model))`` to the loss: the negative log-likelihood of the weights
under ``sum_j pi_j N(w | mu_j, sigma_j^2)``. Component 0 has mean fixed at 0 and a fixed high mixing weight
``pi_zero`` (it pulls weights to zero, i.e. prunes); the other means, every log-variance and the other mixing
logits are learned. Afterwards :func:`merge_and_quantize` merges components whose means are close and sets every
weight to the mean of its most probable component (zero component -> exactly 0, index -1).

Example:
    >>> prior = GaussianMixturePrior.from_weights(flat_weights(net), components=16)
    >>> soft_sharing_train(net, data, prior, TrainingHparams(steps="10ep", optimizer="adam", lr=5e-4), tau=5e-3)
    >>> merge_and_quantize(net, prior)           # CodebookWeight parametrizations, method 'soft_sharing'
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.quantize.base import check_finite, quantizer_of, remove_quantizer, selected_tensors
from netpress.quantize.codes import PRUNED
from netpress.quantize.sharing import CodebookWeight, _attach

_LOG_2PI = math.log(2 * math.pi)
MIN_LOG_VAR = math.log(1e-10)  # variance floor: a component collapsing onto its weights would make the NLL -> -inf


class GaussianMixturePrior(nn.Module):
    """Mixture prior over weights with a fixed zero-mean component.

    Args:
        means: initial means of the ``k-1`` nonzero components.
        pi_zero: fixed mixing weight of the zero component, in (0, 1).
        init_std: initial standard deviation of every component.

    Example:
        >>> prior = GaussianMixturePrior(torch.linspace(-0.5, 0.5, 15), pi_zero=0.99)
        >>> prior(torch.randn(100) * 0.1).shape
        torch.Size([])
    """

    def __init__(self, means: torch.Tensor, pi_zero: float = 0.99, init_std: float = 0.05):
        super().__init__()
        if not 0 < pi_zero < 1:
            raise ConfigError(f"pi_zero must be in (0, 1), got {pi_zero}")
        if init_std <= 0:
            raise ConfigError(f"init_std must be > 0, got {init_std}")
        means = means.detach().reshape(-1).float()
        if means.numel() < 1:
            raise ConfigError("the prior needs at least one nonzero component")
        self.pi_zero = float(pi_zero)
        self.means = nn.Parameter(means.clone())
        self.log_vars = nn.Parameter(torch.full((means.numel() + 1,), 2 * math.log(init_std)))
        self.logits = nn.Parameter(torch.zeros(means.numel()))

    @classmethod
    def from_weights(cls, w: torch.Tensor, components: int = 16, pi_zero: float = 0.99,
                     init_std: float | None = None) -> "GaussianMixturePrior":
        """A prior of ``components`` Gaussians (one at zero) with means spread evenly over ``w``'s range.

        Example:
            >>> prior = GaussianMixturePrior.from_weights(flat_weights(net), components=17)
        """
        if components < 2:
            raise ConfigError(f"components must be >= 2 (the zero one plus at least one), got {components}")
        lo, hi = float(w.min()), float(w.max())
        grid = torch.linspace(lo, hi, components)
        nonzero = grid[grid.abs().argsort()[1:]].sort().values  # drop the grid point nearest zero
        std = init_std if init_std is not None else max((hi - lo) / (4 * components), 1e-4)
        return cls(nonzero, pi_zero, std)

    def all_means(self) -> torch.Tensor:
        """Means of every component, the zero one first."""
        return torch.cat([self.means.new_zeros(1), self.means])

    def log_mixing(self) -> torch.Tensor:
        """Log mixing weights, the zero one (fixed) first."""
        rest = torch.log_softmax(self.logits, 0) + math.log(1 - self.pi_zero)
        return torch.cat([rest.new_full((1,), math.log(self.pi_zero)), rest])

    def log_joint(self, w: torch.Tensor) -> torch.Tensor:
        """``log pi_j + log N(w_i | mu_j, sigma_j^2)``, shape ``[n, k]``."""
        w = w.reshape(-1, 1).to(self.means.dtype)
        log_vars = self.log_vars.clamp_min(MIN_LOG_VAR)
        log_n = -0.5 * (_LOG_2PI + log_vars + (w - self.all_means()) ** 2 / log_vars.exp())
        return log_n + self.log_mixing()

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood ``-sum_i log sum_j pi_j N(w_i | mu_j, sigma_j^2)`` of the (flat) weights."""
        return -torch.logsumexp(self.log_joint(w), dim=1).sum()


class _WithPrior(nn.Module):
    """The model and its prior as one module, so one optimizer (and checkpoint) holds both."""

    def __init__(self, model: nn.Module, prior: GaussianMixturePrior):
        super().__init__()
        self.model, self.prior = model, prior

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def soft_sharing_train(model: nn.Module, data, prior: GaussianMixturePrior, hp, tau: float = 5e-3, *,
                       names: Iterable[str] | None = None, exclude: Iterable[str] = (), **train_kwargs):
    """Train ``model`` and ``prior`` together on ``cross_entropy + tau * prior(weights) / n_train``.

    Args:
        model: the network, trained in place.
        data: :class:`~netpress.data.DataSplits`.
        prior: a :class:`GaussianMixturePrior`, learned in place.
        hp: :class:`~netpress.train.TrainingHparams`.
        tau: weight of the prior's NLL per training example (Ullrich et al. use ~5e-3).
        names: weights under the prior (default: every Linear/Conv weight).
        exclude: plain names outside the prior.
        **train_kwargs: passed to :func:`netpress.train.train`.

    Returns:
        The :class:`~netpress.train.TrainResult`.

    Raises:
        ConfigError: ``tau < 0``; before training.

    Example:
        >>> soft_sharing_train(net, data, prior, TrainingHparams(steps="10ep", lr=5e-4, optimizer="adam"))
        >>> merge_and_quantize(net, prior)
    """
    from netpress.train import cross_entropy, train

    if not tau >= 0:
        raise ConfigError(f"tau must be >= 0, got {tau}")
    selected_tensors(model, names, exclude)  # unknown names fail before training
    n = max(1, len(data.train))

    def loss_fn(outputs, batch):
        return cross_entropy(outputs, batch) + tau * prior(flat_weights(model, names, exclude)) / n

    return train(_WithPrior(model, prior), data, hp, loss_fn=loss_fn, **train_kwargs)


def flat_weights(model: nn.Module, names: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> torch.Tensor:
    """The selected weights (default: Linear/Conv weights) concatenated into one 1-D tensor, with gradients.

    Example:
        >>> loss = loss + 5e-3 * prior(flat_weights(net))
    """
    tensors = selected_tensors(model, names, exclude)
    return torch.cat([getattr(m, a).reshape(-1) for m, a in tensors.values()])


@torch.no_grad()
def merged_components(prior: GaussianMixturePrior, tol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge components whose means lie within ``tol`` (greedy over sorted means, joining the zero one first).

    A merged component gets the mixing-weighted mean and variance and the summed weight; one containing the
    zero component keeps mean 0.

    Returns:
        ``(means, log_vars, log_mixing)`` of the merged mixture, the zero component first.
    """
    means, variances, pis = prior.all_means(), prior.log_vars.clamp_min(MIN_LOG_VAR).exp(), prior.log_mixing().exp()
    order = means.argsort()
    groups: list[list[int]] = []
    for j in order.tolist():
        if groups and abs(float(means[j] - means[groups[-1][-1]])) < tol:
            groups[-1].append(j)
        else:
            groups.append([j])
    out_m, out_v, out_p = [], [], []
    zero_first = sorted(groups, key=lambda g: 0 not in g)
    for g in zero_first:
        idx = torch.tensor(g)
        p = pis[idx]
        out_p.append(p.sum())
        out_m.append(torch.zeros(()) if 0 in g else (p * means[idx]).sum() / p.sum())
        out_v.append((p * variances[idx]).sum() / p.sum())
    return torch.stack(out_m).float(), torch.stack(out_v).log().float(), torch.stack(out_p).log().float()


@torch.no_grad()
def assign_components(w: torch.Tensor, means: torch.Tensor, log_vars: torch.Tensor,
                      log_mixing: torch.Tensor) -> torch.Tensor:
    """Index of each weight's most probable component (argmax of ``log pi_j + log N(w | mu_j, sigma_j^2)``)."""
    x, lv, mu = w.reshape(-1, 1).double(), log_vars.double(), means.double()
    chunk = max(1, (1 << 22) // max(1, mu.numel()))  # bounded memory
    parts = [(-0.5 * (_LOG_2PI + lv + (x[i:i + chunk] - mu) ** 2 / lv.exp()) + log_mixing.double()).argmax(dim=1)
             for i in range(0, x.shape[0], chunk)]
    return torch.cat(parts).reshape(w.shape)


def merge_and_quantize(model: nn.Module, prior: GaussianMixturePrior, *, tol: float = 1e-2,
                       names: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> nn.Module:
    """Merge close components, then set every weight to the mean of its most probable component.

    Args:
        model: a model trained with the prior, changed in place.
        prior: the learned :class:`GaussianMixturePrior`.
        tol: components whose means differ by less than this merge.
        names: the weights the prior covered (default: every Linear/Conv weight).
        exclude: plain names to leave alone.

    Returns:
        ``model``: each selected weight a :class:`CodebookWeight` (``method='soft_sharing'``) over the merged
        nonzero means (one shared codebook); weights of the zero component get index -1 (exactly 0).

    Raises:
        ConfigError: ``tol < 0`` or NaN/Inf weights; before any change.

    Example:
        >>> merge_and_quantize(net, prior, tol=0.01)
    """
    if tol < 0:
        raise ConfigError(f"tol must be >= 0, got {tol}")
    tensors = selected_tensors(model, names, exclude)
    values = {n: getattr(m, a).detach() for n, (m, a) in tensors.items()}
    for n, w in values.items():
        check_finite(n, w)
    from netpress.prune.masks import is_masked, strip

    means, log_vars, log_mix = merged_components(prior, tol)
    codebook = means[1:] if means.numel() > 1 else means.new_zeros(1)  # all merged into zero: all pruned
    if is_masked(model):
        strip(model)
    bits = max(1, math.ceil(math.log2(max(codebook.numel(), 2))))
    for name, (module, attr) in tensors.items():
        comp = assign_components(values[name].cpu(), means, log_vars, log_mix)
        indices = torch.where(comp == 0, torch.full_like(comp, PRUNED), comp - 1)
        if quantizer_of(module, attr) is not None:
            remove_quantizer(module, attr)
        w = values[name]
        _attach(module, attr, CodebookWeight(indices.to(w.device), codebook.to(w.device), bits,
                                             method="soft_sharing"))
    return model
