"""Learning-rate multipliers as pure functions of the iteration (so resumes and lr-rewinding replay them)."""
from __future__ import annotations

import math
from typing import Callable

from netpress.train.hparams import TrainingHparams
from netpress.units import Steps


def lr_multiplier(hp: TrainingHparams, iterations_per_epoch: int, length: int | None = None) -> Callable[[int], float]:
    """Return ``f(iteration) -> factor`` applied to ``hp.lr``.

    Args:
        hp: the training hyperparameters (schedule, warm-up, milestones).
        iterations_per_epoch: to turn ``'2ep'`` into iterations.
        length: iterations the schedule spans (default ``hp.steps``); a run resumed from a rewind point k that
            trains the remaining ``steps`` passes ``k + steps`` so it replays the original schedule's tail.
    """
    total = length if length is not None else Steps.parse(hp.steps).iterations(iterations_per_epoch)
    warmup = Steps.parse(hp.warmup).iterations(iterations_per_epoch)
    milestones = sorted(Steps.parse(m).iterations(iterations_per_epoch) for m in filter(None, hp.milestones.split(",")))

    def base(it: int) -> float:
        if hp.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
        if hp.lr_schedule == "linear":
            return max(0.0, 1 - it / total)
        if hp.lr_schedule == "step":
            return hp.gamma ** sum(it >= m for m in milestones)
        return 1.0

    def factor(it: int) -> float:
        w = min(1.0, (it + 1) / warmup) if warmup else 1.0
        return w * base(it)

    return factor
