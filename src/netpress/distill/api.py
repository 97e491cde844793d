"""One-call distillation: ``distill(student, teacher, data, train_hp)``."""
from __future__ import annotations

from torch import nn

from netpress.data.base import DataSplits
from netpress.distill.hparams import DistillHparams
from netpress.distill.loss import DistillationLoss, check_compatible
from netpress.train import TrainingHparams, TrainResult, train


def distill(student: nn.Module, teacher: nn.Module, data: DataSplits, train_hp: TrainingHparams | None = None, *,
            temperature: float = 4.0, alpha: float = 0.1, mode: str = "kd", hparams: DistillHparams | None = None,
            **train_kwargs) -> TrainResult:
    """Train ``student`` in place on ``data`` with a distillation loss from the frozen ``teacher``.

    Checks (before any work) that the hyperparameters are valid and that teacher, student and data agree on
    the number of classes; then caches the teacher's outputs once (when the data order allows) and trains.

    Args:
        student: any nn.Module classifier (masked or quantization-aware modules included).
        teacher: any trained nn.Module classifier.
        data: train/val/test splits.
        train_hp: the student's training hyperparameters (default :class:`TrainingHparams`).
        temperature, alpha, mode: see :class:`DistillHparams`; ignored when ``hparams`` is given.
        hparams: a full :class:`DistillHparams`.
        **train_kwargs: passed on to :func:`netpress.train.train` (``device``, ``checkpoint_dir``, ``callbacks``, ...).

    Returns:
        The :class:`~netpress.train.TrainResult` of the student.

    Raises:
        ConfigError: temperature <= 0, alpha outside [0, 1], unknown mode, or a class-count mismatch.

    Example:
        >>> result = distill(student, teacher, load_data("digits"), TrainingHparams(steps="5ep"), temperature=4)
        >>> result.final_test_accuracy
    """
    hp = hparams or DistillHparams(temperature=temperature, alpha=alpha, mode=mode)
    check_compatible(student, teacher, data.input_shape, data.num_classes)
    loss = DistillationLoss(teacher, hp, data.train, device=train_kwargs.get("device", "auto"))
    return train(student, data, train_hp or TrainingHparams(), loss_fn=loss, **train_kwargs)
