"""Schedules: *when* and *how much at a time*. One-shot, iterative prune-then-retrain, AGP during training.

Retraining modes after each pruning round (shared vocabulary with the lottery-ticket work):
- ``finetune``: train the surviving weights with ``retrain_hp`` as given (typically a constant lower lr, Han 2015);
- ``lr-rewind``: keep the weights, replay ``retrain_hp``'s lr schedule from ``rewind_iteration`` (Renda et al. 2020);
- ``weight-rewind``: reset surviving weights to ``rewind_state`` (a plain state dict), then as ``lr-rewind``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from netpress.data.base import DataSplits, iterations_per_epoch
from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.prune.core import prune
from netpress.prune.masks import apply_masks, get_masks, load_plain_state_dict, prunable_tensors, sparsity
from netpress.prune.scope import check_fraction
from netpress.train import TrainingHparams, evaluate, train
from netpress.units import Steps

RETRAIN_MODES = ("finetune", "lr-rewind", "weight-rewind")
SCHEDULE_KINDS = ("oneshot", "iterative", "agp")


@dataclasses.dataclass(frozen=True)
class ScheduleHparams(Hparams):
    """How pruning is spread over time.

    Attributes:
        kind: ``oneshot``, ``iterative`` or ``agp``.
        rounds: pruning rounds for ``iterative`` (each followed by retraining).
        retrain: ``finetune``, ``lr-rewind`` or ``weight-rewind``.
        agp_start, agp_end, agp_every: AGP window and pruning frequency (``'1ep'``, ``'100it'``).
    """

    kind: str = "oneshot"
    rounds: int = 1
    retrain: str = "finetune"
    agp_start: str = "0it"
    agp_end: str = "1ep"
    agp_every: str = "50it"

    def validate(self) -> None:
        require(self.kind in SCHEDULE_KINDS, f"unknown schedule {self.kind!r}; known: {', '.join(SCHEDULE_KINDS)}")
        require(self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}")
        require(self.retrain in RETRAIN_MODES, f"unknown retrain mode {self.retrain!r}; known: {', '.join(RETRAIN_MODES)}")
        for s in (self.agp_start, self.agp_end, self.agp_every):
            Steps.parse(s)


def parse_schedule(text: str, **extra) -> ScheduleHparams:
    """``'oneshot'``, ``'iterative:3'`` or ``'agp'`` (extra fields as keyword arguments).

    Example:
        >>> parse_schedule("iterative:3").rounds
        3
    """
    kind, _, arg = text.partition(":")
    if arg and kind != "iterative":
        raise ConfigError(f"schedule {text!r}: only 'iterative:N' takes a number")
    try:
        rounds = int(arg) if arg else (extra.pop("rounds", 1))
    except ValueError:
        raise ConfigError(f"schedule {text!r}: expected 'iterative:N' with N a whole number") from None
    return ScheduleHparams(kind=kind, rounds=rounds, **extra)


def training_iterations(hp: TrainingHparams, data: DataSplits) -> int:
    """The number of optimizer steps ``hp.steps`` means on ``data.train`` at ``hp.batch_size``."""
    return Steps.parse(hp.steps).iterations(iterations_per_epoch(len(data.train), hp.batch_size))


def _remaining(hp: TrainingHparams, start: int, data: DataSplits) -> TrainingHparams:
    """Retraining from rewind point ``start`` runs the rest of ``hp.steps`` (the schedule spans all of it)."""
    if start == 0:
        return hp
    total = training_iterations(hp, data)
    require(start < total, f"rewind point {start}it is not inside the retraining length {hp.steps}")
    return hp.replace(steps=f"{total - start}it")


def round_targets(sparsity_target: float, rounds: int) -> list[float]:
    """Per-round cumulative targets pruning the same fraction of survivors each round: 1 - (1-s)^(i/n).

    Example:
        >>> round_targets(0.75, 2)
        [0.5, 0.75]
    """
    return [1 - (1 - sparsity_target) ** (i / rounds) for i in range(1, rounds + 1)]


def iterative_prune(model: nn.Module, data: DataSplits, sparsity_target: float, *, rounds: int = 3,
                    retrain_hp: TrainingHparams | None = None, retrain: str = "finetune",
                    rewind_state: dict[str, torch.Tensor] | None = None, rewind_iteration: int = 0,
                    device: str = "auto", progress: bool | None = None, **prune_kwargs) -> list[dict]:
    """Prune-then-retrain in ``rounds`` rounds (Han et al. 2015); ``rounds=1`` is one-shot with retraining.

    Args:
        model: changed in place (masks attached).
        data: splits used for retraining and evaluation.
        sparsity_target: final fraction of zeros (same semantics as :func:`compute_masks`).
        rounds: pruning rounds; round targets follow :func:`round_targets` (also for ``layer_sparsity``).
        retrain_hp: retraining after every round; ``None`` = no retraining (pure one-shot).
        retrain: ``finetune``, ``lr-rewind`` or ``weight-rewind`` (see module docstring).
        rewind_state: plain state dict for ``weight-rewind``.
        rewind_iteration: where the replayed lr schedule starts for the rewinding modes.
        device, progress: as for :func:`netpress.train.train`.
        **prune_kwargs: ``score``, ``scope``, ``layer_sparsity``, ``exclude``, ``names``, ``allow_collapse``.

    Returns:
        One dict per round: ``round``, ``sparsity``, ``pruned_test_accuracy``, ``test_accuracy``.

    Example:
        >>> iterative_prune(net, splits, 0.92, rounds=3, retrain_hp=TrainingHparams(lr=0.005, steps="2ep"))
    """
    check_fraction(sparsity_target)
    require(retrain in RETRAIN_MODES, f"unknown retrain mode {retrain!r}; known: {', '.join(RETRAIN_MODES)}")
    require(retrain != "weight-rewind" or rewind_state is not None, "weight-rewind needs rewind_state")
    own = dict(prune_kwargs.pop("layer_sparsity", None) or {})
    if prune_kwargs.get("score", "magnitude") not in ("magnitude", "random") and "data" not in prune_kwargs:
        prune_kwargs["data"] = data
    history = []
    for i, target in enumerate(round_targets(sparsity_target, rounds), 1):
        layer = {n: 1 - (1 - f) ** (i / rounds) for n, f in own.items()}
        prune(model, target, layer_sparsity=layer or None, **prune_kwargs)
        row = {"round": i, "sparsity": sparsity(model, prune_kwargs.get("names")),
               "pruned_test_accuracy": evaluate(model, data.test).accuracy}
        if retrain_hp is not None:
            if retrain == "weight-rewind":
                load_plain_state_dict(model, rewind_state)
            start = rewind_iteration if retrain != "finetune" else 0
            result = train(model, data, _remaining(retrain_hp, start, data), start_iteration=start, device=device,
                           progress=progress, desc=f"retrain round {i}")
            row["test_accuracy"] = result.final_test_accuracy
        else:
            row["test_accuracy"] = row["pruned_test_accuracy"]
        history.append(row)
    return history


class AGP:
    """Automated Gradual Pruning (Zhu & Gupta 2017) as a trainer callback.

    The target at iteration t is ``s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0))^3`` on ``[t0, t1]``, applied
    every ``every`` iterations and at ``t1`` (so the final target is reached); it is a pure function of the
    iteration, and masks live in the model's state dict, so a resumed run prunes exactly as an uninterrupted one.
    Call :meth:`attach` before training (and before a checkpoint is resumed) so the model has mask slots.

    Example:
        >>> agp = AGP(0.9, start=0, end=1000, every=50)
        >>> train(agp.attach(net), splits, hp, callbacks=[agp])
    """

    def __init__(self, sparsity_target: float, start: int, end: int, every: int = 50, initial: float = 0.0,
                 **prune_kwargs):
        self.final, self.initial = check_fraction(sparsity_target), check_fraction(initial, "initial sparsity")
        require(0 <= start < end, f"AGP needs 0 <= start < end, got {start}, {end}")
        require(every >= 1, f"AGP every must be >= 1, got {every}")
        self.start, self.end, self.every, self.kwargs = start, end, every, prune_kwargs

    @classmethod
    def from_hparams(cls, sparsity_target: float, hp: ScheduleHparams, data: DataSplits, batch_size: int, **kw) -> "AGP":
        ipe = iterations_per_epoch(len(data.train), batch_size)
        it = lambda s: Steps.parse(s).iterations(ipe)
        return cls(sparsity_target, it(hp.agp_start), it(hp.agp_end), max(1, it(hp.agp_every)), **kw)

    def target(self, iteration: int) -> float:
        """The sparsity AGP asks for at ``iteration``."""
        t = min(max(iteration, self.start), self.end)
        return self.final + (self.initial - self.final) * (1 - (t - self.start) / (self.end - self.start)) ** 3

    def attach(self, model: nn.Module) -> nn.Module:
        """Give every selected tensor an all-ones mask (no-op where a mask exists). Returns ``model``."""
        have = get_masks(model)
        sel = prunable_tensors(model, self.kwargs.get("names"), self.kwargs.get("exclude", ()))
        apply_masks(model, {n: torch.ones_like(getattr(m, a)) for n, (m, a) in sel.items() if n not in have})
        return model

    def on_step_end(self, iteration: int, model: nn.Module, optimizer) -> None:
        if self.start <= iteration <= self.end and ((iteration - self.start) % self.every == 0 or iteration == self.end):
            prune(model, self.target(iteration), **self.kwargs)
