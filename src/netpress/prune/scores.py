"""Scores: *what* to prune. A score maps each selected tensor to an importance of the same shape (higher = keep).

Scores are kept apart from *how much* (scopes, :func:`netpress.prune.compute_masks`) and *when* (schedules).
Weight-level scores rate every weight; unit-level scores (``structured = True``) rate each output neuron/filter
and are broadcast over its weights for unstructured use, or used directly by structured pruning.

Registered scores: ``magnitude``, ``random``, ``gradient``, ``taylor``, ``snip`` (weight level); ``l1``, ``l2``,
``activation``, ``apoz`` (unit level). ``gradient``, ``taylor``, ``snip``, ``activation`` and ``apoz`` need data.

Example (a new score in a few lines):
    >>> @SCORES.register("cubed")
    ... class Cubed(Score):
    ...     def weight_scores(self, model, tensors, data):
    ...         return {n: getattr(m, a).detach().abs() ** 3 for n, (m, a) in tensors.items()}
    >>> compute_masks(net, 0.5, score="cubed")
"""
from __future__ import annotations

import itertools
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from netpress.data.base import DataSplits, batches
from netpress.errors import ConfigError
from netpress.modes import eval_mode
from netpress.registry import Registry

Tensors = dict[str, tuple[nn.Module, str]]
SCORES: Registry[Callable[[], "Score"]] = Registry("score")


class Score:
    """Base class. Override :meth:`weight_scores` (weight level) or :meth:`unit_scores` with ``structured = True``.

    Attributes:
        needs_data: the score runs the model on batches of ``data`` (a ConfigError is raised without it).
        structured: the score natively rates output units (neurons/filters), one value per row of the weight.
        batch_size: examples per batch for data-driven scores.
        num_batches: batches averaged over.
    """

    needs_data = False
    structured = False

    def __init__(self, batch_size: int = 128, num_batches: int = 4):
        self.batch_size, self.num_batches = batch_size, num_batches

    def weight_scores(self, model: nn.Module, tensors: Tensors, data) -> dict[str, torch.Tensor]:
        """Importance of every weight, same shape as each tensor. Default: unit scores broadcast over rows."""
        units = self.unit_scores(model, tensors, data)
        return {n: _broadcast(units[n], getattr(m, a)) for n, (m, a) in tensors.items()}

    def unit_scores(self, model: nn.Module, tensors: Tensors, data) -> dict[str, torch.Tensor]:
        """Importance of every output unit (row). Default: sum of the weight scores of the row."""
        ws = self.weight_scores(model, tensors, data)
        return {n: s.reshape(s.shape[0], -1).sum(1) if s.dim() > 1 else s for n, s in ws.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _broadcast(unit: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return unit.reshape(-1, *([1] * (w.dim() - 1))).expand_as(w).clone() if w.dim() > 1 else unit.clone()


def resolve_score(score: "str | Score") -> Score:
    """A :class:`Score` from a registered name or an instance.

    Raises:
        UnknownNameError: an unregistered name (listing the known ones).
    """
    if isinstance(score, Score):
        return score
    if isinstance(score, str):
        return SCORES.get(score)()
    raise ConfigError(f"score must be a name ({', '.join(SCORES.names())}) or a Score, got {type(score).__name__}")


def data_batches(data, batch_size: int, num_batches: int):
    """The first ``num_batches`` batches of ``data`` (a Dataset, or the train split of DataSplits), in order."""
    if data is None:
        raise ConfigError("this score needs data (pass data=...)")
    ds = data.train if isinstance(data, DataSplits) else data
    return list(itertools.islice(batches(ds, batch_size), num_batches))


def effective_gradients(model: nn.Module, tensors: Tensors, data, batch_size: int, num_batches: int,
                        loss_fn=nn.functional.cross_entropy) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Mean gradient of the loss w.r.t. each *effective* (masked) tensor over some batches, in eval mode.

    Returns:
        ``(gradients, weights)`` by plain name; weights are the effective values.
    """
    dev = next(model.parameters()).device
    grads = {n: 0.0 for n in tensors}
    todo = data_batches(data, batch_size, num_batches)
    with eval_mode(model):
        for batch in todo:
            with parametrize.cached():
                ws = {n: getattr(m, a) for n, (m, a) in tensors.items()}
                loss = loss_fn(model(batch.x.to(dev)), batch.y.to(dev))
                gs = torch.autograd.grad(loss, list(ws.values()), allow_unused=True)
            for n, g in zip(ws, gs):
                grads[n] = grads[n] + (g if g is not None else torch.zeros_like(ws[n]))
    weights = {n: getattr(m, a).detach() for n, (m, a) in tensors.items()}
    return {n: (g / len(todo)).detach() for n, g in grads.items()}, weights


@SCORES.register("magnitude")
class Magnitude(Score):
    """|w| (Han et al. 2015)."""

    def weight_scores(self, model, tensors, data):
        return {n: getattr(m, a).detach().abs() for n, (m, a) in tensors.items()}


@SCORES.register("random")
class Random(Score):
    """Uniform random scores from a fixed seed (the random-pruning control)."""

    def __init__(self, seed: int = 0, **kw):
        super().__init__(**kw)
        self.seed = seed

    def weight_scores(self, model, tensors, data):
        g = torch.Generator().manual_seed(self.seed)
        return {n: torch.rand(getattr(m, a).shape, generator=g).to(getattr(m, a).device) for n, (m, a) in tensors.items()}


@SCORES.register("gradient")
class GradientMagnitude(Score):
    """|E[dL/dw]|: magnitude of the mean loss gradient over ``num_batches`` batches."""

    needs_data = True

    def weight_scores(self, model, tensors, data):
        grads, _ = effective_gradients(model, tensors, data, self.batch_size, self.num_batches)
        return {n: g.abs() for n, g in grads.items()}


@SCORES.register("taylor")
class Taylor(Score):
    """First-order Taylor |E[dL/dw] * w| (Molchanov et al. 2017), the loss change from zeroing a weight."""

    needs_data = True

    def weight_scores(self, model, tensors, data):
        grads, weights = effective_gradients(model, tensors, data, self.batch_size, self.num_batches)
        return {n: (grads[n] * weights[n]).abs() for n in tensors}


@SCORES.register("snip")
class SNIP(Score):
    """SNIP connection sensitivity |g * w| / sum(|g * w|) on one batch (Lee et al. 2019), normalised globally."""

    needs_data = True

    def __init__(self, batch_size: int = 128, num_batches: int = 1):
        super().__init__(batch_size, num_batches)

    def weight_scores(self, model, tensors, data):
        grads, weights = effective_gradients(model, tensors, data, self.batch_size, self.num_batches)
        s = {n: (grads[n] * weights[n]).abs() for n in tensors}
        total = sum(v.sum() for v in s.values())
        return {n: v / total.clamp_min(1e-30) for n, v in s.items()}


class _Norm(Score):
    structured = True
    p = 1

    def unit_scores(self, model, tensors, data):
        out = {}
        for n, (m, a) in tensors.items():
            w = getattr(m, a).detach()
            out[n] = w.reshape(w.shape[0], -1).norm(p=self.p, dim=1) if w.dim() > 1 else w.abs()
        return out


@SCORES.register("l1")
class L1Norm(_Norm):
    """L1 norm of each neuron's / filter's incoming weights (Li et al. 2017)."""

    p = 1


@SCORES.register("l2")
class L2Norm(_Norm):
    """L2 norm of each neuron's / filter's incoming weights."""

    p = 2


def channel_dim(module: nn.Module, output: torch.Tensor) -> int:
    """The dimension of ``output`` holding channels/neurons: 1 for convolutions, the last for Linear."""
    return 1 if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and output.dim() > 2 else output.dim() - 1


class _ActivationStat(Score):
    needs_data = True
    structured = True

    def stat(self, out: torch.Tensor) -> torch.Tensor:  # out: [N, C] -> per-channel sums
        raise NotImplementedError

    def unit_scores(self, model, tensors, data):
        sums = {n: 0.0 for n in tensors}
        counts = {n: 0 for n in tensors}
        hooks = []
        for n, (m, _) in tensors.items():
            def hook(mod, inp, out, n=n):
                flat = out.detach().movedim(channel_dim(mod, out), -1).reshape(-1, out.shape[channel_dim(mod, out)])
                sums[n] = sums[n] + self.stat(flat)
                counts[n] += flat.shape[0]
            hooks.append(m.register_forward_hook(hook))
        dev = next(model.parameters()).device
        try:
            with eval_mode(model), torch.no_grad():
                for batch in data_batches(data, self.batch_size, self.num_batches):
                    model(batch.x.to(dev))
        finally:
            for h in hooks:
                h.remove()
        return {n: self.finish(sums[n] / max(counts[n], 1)) for n in tensors}

    def finish(self, mean: torch.Tensor) -> torch.Tensor:
        return mean


@SCORES.register("activation")
class MeanActivation(_ActivationStat):
    """Mean post-ReLU activation of each neuron/filter over the data (Polyak & Wolf 2015)."""

    def stat(self, out):
        return out.clamp_min(0).sum(0)


@SCORES.register("apoz")
class APoZ(_ActivationStat):
    """1 - APoZ: one minus the Average Percentage of Zeros after ReLU (Hu et al. 2016); higher = keep."""

    def stat(self, out):
        return (out <= 0).float().sum(0)

    def finish(self, mean):
        return 1.0 - mean
