"""Early-Bird tickets (You et al. 2020): find the winning mask early, when it stops changing during training.

At each observation point (e.g. every epoch) the global pruning mask at the target sparsity is drawn from the
current weights (``score='weight'``: weight magnitudes) or BatchNorm scales (``score='bn'``: network slimming's
|gamma|, masks whole channels). The normalised Hamming distance between consecutive masks goes into a FIFO of
length ``window``; when every distance in it is below ``eps`` the ticket has emerged.

Example:
    >>> eb = EarlyBird(sparsity=0.5, every=iterations_per_epoch(len(data.train), 128), score="bn")
    >>> train(net, data, hp, callbacks=[eb])
    >>> eb.detected_at, eb.ticket          # first point of detection, {plain_name: 0/1 mask}
    >>> apply_masks(net, eb.ticket)
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Iterable

import torch
from torch import nn

from netpress.errors import ConfigError

SCORES = ("weight", "bn")


def scored_tensors(model: nn.Module, score: str, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """The tensors whose magnitudes rank: prunable weights (``weight``) or BatchNorm scales (``bn``), by name."""
    from netpress.prune.masks import prunable_tensors

    if score == "weight":
        return {n: getattr(m, a).detach() for n, (m, a) in prunable_tensors(model, names).items()}
    if score == "bn":
        bns = {f"{n}.weight": m.weight.detach() for n, m in model.named_modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None}
        if names is not None:
            bns = {n: t for n, t in bns.items() if n in set(names)}
        return bns
    raise ConfigError(f"unknown early-bird score {score!r}; known: {', '.join(SCORES)}")


def global_mask(tensors: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """0/1 masks keeping the largest-magnitude ``1 - sparsity`` fraction of all entries (ties: lower index kept).

    Example:
        >>> global_mask({"a": torch.tensor([0.1, -3.0, 2.0])}, sparsity=1/3)["a"]
        tensor([0., 1., 1.])
    """
    if not tensors:
        raise ConfigError("no tensors to score (no prunable weights / BatchNorm layers)")
    flat = torch.cat([t.reshape(-1).abs().float().cpu() for t in tensors.values()])
    keep = flat.numel() - int(round(sparsity * flat.numel()))
    mask = torch.zeros(flat.numel())
    mask[torch.argsort(flat, descending=True, stable=True)[:keep]] = 1.0
    out, start = {}, 0
    for name, t in tensors.items():
        out[name] = mask[start:start + t.numel()].reshape(t.shape)
        start += t.numel()
    return out


def mask_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Normalised Hamming distance: the fraction of entries whose keep/prune decision differs.

    Example:
        >>> mask_distance({"w": torch.tensor([1., 0.])}, {"w": torch.tensor([1., 1.])})
        0.5
    """
    if a.keys() != b.keys():
        raise ConfigError(f"masks cover different tensors: {sorted(a)} vs {sorted(b)}")
    differ = sum(int((a[n] != b[n]).sum()) for n in a)
    return differ / max(1, sum(a[n].numel() for n in a))


class EarlyBird:
    """Training callback detecting the Early-Bird ticket.

    Args:
        sparsity: target fraction pruned, in [0, 1).
        window: number of consecutive mask distances that must all be below ``eps``.
        eps: distance threshold (fraction of entries).
        every: iterations between observations (e.g. iterations per epoch), for :meth:`on_step_end`.
        score: ``weight`` (magnitudes of prunable weights) or ``bn`` (BatchNorm scales, channel pruning).
        names: restrict to these plain names (default: all of that kind).
        masker: optional ``masker(model) -> {plain_name: 0/1 mask}`` drawing the mask instead of one global
            magnitude threshold over ``score``'s tensors (e.g. a lottery level's masks, with its own output-layer
            rate); ``score`` and ``names`` are then unused.
        stop: end training at detection (``stop_training`` turns true; the trainer stops after that step).

    Attributes:
        distances: every consecutive mask distance observed.
        detected_at: the observation index (0-based) at which the ticket was detected, else None.
        stable_since: the first observation of the stable run (``detected_at - window``), else None.
        ticket: the mask at detection, ``{plain_name: 0/1 tensor}`` (usable with ``prune.apply_masks``).
        detected_iteration: the training iteration of detection when run as a callback, else None (the
            iterations after it are what stopping early saves).
    """

    def __init__(self, sparsity: float, window: int = 5, eps: float = 0.1, every: int = 1, score: str = "weight",
                 names: Iterable[str] | None = None,
                 masker: Callable[[nn.Module], dict[str, torch.Tensor]] | None = None, stop: bool = False):
        if not 0 <= sparsity < 1:
            raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
        if window < 1 or every < 1:
            raise ConfigError(f"window and every must be >= 1, got {window} and {every}")
        if not 0 < eps <= 1:
            raise ConfigError(f"eps must be in (0, 1], got {eps}")
        if score not in SCORES:
            raise ConfigError(f"unknown early-bird score {score!r}; known: {', '.join(SCORES)}")
        self.sparsity, self.window, self.eps, self.every, self.score = sparsity, window, eps, every, score
        self.names = None if names is None else list(names)
        self.masker, self.stop = masker, stop
        self.distances: list[float] = []
        self._recent: deque[float] = deque(maxlen=window)
        self._previous: dict[str, torch.Tensor] | None = None
        self._observations = 0
        self.detected_at: int | None = None
        self.ticket: dict[str, torch.Tensor] | None = None
        self.detected_iteration: int | None = None

    @property
    def stop_training(self) -> bool:
        """True once detected when built with ``stop=True`` (read by the trainer after each step)."""
        return self.stop and self.detected_iteration is not None

    @property
    def stable_since(self) -> int | None:
        return None if self.detected_at is None else self.detected_at - self.window

    def observe(self, model: nn.Module) -> bool:
        """Draw the current mask and update the distance window.

        Returns:
            True once the ticket is detected (at this or an earlier observation).
        """
        if self.masker is not None:
            mask = {n: m.detach().float().cpu() for n, m in self.masker(model).items()}
        else:
            mask = global_mask(scored_tensors(model, self.score, self.names), self.sparsity)
        index, self._observations = self._observations, self._observations + 1
        if self._previous is not None:
            d = mask_distance(mask, self._previous)
            self.distances.append(d)
            self._recent.append(d)
        self._previous = mask
        if (self.detected_at is None and len(self._recent) == self.window and max(self._recent) < self.eps):
            self.detected_at, self.ticket = index, mask
        return self.detected_at is not None

    def on_step_end(self, iteration: int, model: nn.Module, optimizer=None) -> None:
        """Trainer hook: observe every ``every`` iterations."""
        if iteration % self.every == 0 and self.observe(model) and self.detected_iteration is None:
            self.detected_iteration = iteration
