"""Training hyperparameters."""
from __future__ import annotations

import dataclasses

from netpress.hparams import Hparams, require
from netpress.units import Steps

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "linear", "step")


@dataclasses.dataclass(frozen=True)
class TrainingHparams(Hparams):
    """How a model is trained.

    Attributes:
        optimizer: ``sgd``, ``adam`` or ``adamw``.
        lr: learning rate (> 0).
        momentum: SGD momentum in [0, 1).
        weight_decay: L2 (sgd/adam) or decoupled (adamw) decay, >= 0.
        batch_size: examples per step (> 0).
        steps: training length, ``'20ep'`` or ``'500it'``.
        lr_schedule: ``constant``, ``cosine``, ``linear`` (to zero) or ``step`` (x ``gamma`` at each milestone).
        milestones: for ``step``: comma-separated points, e.g. ``'5ep,8ep'``.
        gamma: lr factor at each milestone.
        warmup: linear warm-up length, e.g. ``'200it'``.
        seed: seed of the model init (when netpress builds the model) and of the data order.
        data_order_seed: separate data-order seed; -1 means ``seed``.
        eval_every: evaluation (and checkpoint) interval.
    """

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 128
    steps: str = "10ep"
    lr_schedule: str = "constant"
    milestones: str = ""
    gamma: float = 0.1
    warmup: str = "0it"
    seed: int = 0
    data_order_seed: int = -1
    eval_every: str = "1ep"

    def validate(self) -> None:
        require(self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        require(0 < self.lr < float("inf"), f"lr must be > 0 and finite, got {self.lr}")
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        # canonical spellings ('2ep0it' -> '2ep'), so equal settings always hash to the same run
        object.__setattr__(self, "steps", str(Steps.parse(self.steps, allow_zero=False)))
        object.__setattr__(self, "eval_every", str(Steps.parse(self.eval_every, allow_zero=False)))
        object.__setattr__(self, "warmup", str(Steps.parse(self.warmup)))
        require(self.lr_schedule in SCHEDULES, f"unknown lr_schedule {self.lr_schedule!r}; known: {', '.join(SCHEDULES)}")
        object.__setattr__(self, "milestones", ",".join(str(Steps.parse(m)) for m in filter(None, self.milestones.split(","))))
        require(self.gamma > 0, f"gamma must be > 0, got {self.gamma}")

    @property
    def order_seed(self) -> int:
        return self.seed if self.data_order_seed < 0 else self.data_order_seed
