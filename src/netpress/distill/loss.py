"""Distillation objectives, usable as the trainer's ``loss_fn(outputs, batch)``.

Because a :class:`DistillationLoss` is just a ``loss_fn``, it composes with anything else that trains through
:func:`netpress.train.train`: pass it as ``loss_fn=`` to pruning retraining (the masks are parametrizations of
the student, untouched by the loss), to quantization-aware training (the student's fake-quantized forward
produces ``outputs``), or to a recipe stage ("distillation-assisted" retraining). The teacher is never trained.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from netpress.data.base import Batch, TensorData, batches
from netpress.distill.hparams import DistillHparams
from netpress.errors import ConfigError
from netpress.train.evaluate import output_width, resolve_device


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
            temperature: float = 4.0, alpha: float = 0.1) -> torch.Tensor:
    """Hinton et al.'s distillation loss, averaged over the batch.

    ``alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))``.
    The ``T^2`` factor keeps the soft term's gradient scale independent of ``T``.

    Args:
        student_logits: ``(N, C)`` student outputs (before softmax).
        teacher_logits: ``(N, C)`` teacher outputs; may be None when ``alpha == 1``.
        labels: ``(N,)`` integer class labels.
        temperature: T > 0.
        alpha: weight of the hard-label term, in [0, 1].

    Returns:
        A scalar tensor.

    Example:
        >>> kd_loss(torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,)), 4.0, 0.1)
    """
    hard = F.cross_entropy(student_logits, labels)
    if alpha == 1.0:
        return hard
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * hard + (1.0 - alpha) * (t * t) * soft


def logit_matching_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
                        alpha: float = 0.0) -> torch.Tensor:
    """Ba & Caruana's logit regression: ``alpha * CE + (1 - alpha) * mean((student - teacher)^2)``.

    Args:
        student_logits: ``(N, C)`` student outputs.
        teacher_logits: ``(N, C)`` teacher outputs; may be None when ``alpha == 1``.
        labels: ``(N,)`` integer class labels.
        alpha: weight of the hard-label term, in [0, 1].

    Returns:
        A scalar tensor (the squared error is averaged over all N x C entries).

    Example:
        >>> logit_matching_loss(torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,)))
    """
    hard = F.cross_entropy(student_logits, labels)
    if alpha == 1.0:
        return hard
    return alpha * hard + (1.0 - alpha) * F.mse_loss(student_logits, teacher_logits)


def check_compatible(student: nn.Module, teacher: nn.Module, input_shape: tuple[int, ...],
                     num_classes: int | None = None) -> int:
    """Fail before training when teacher and student (and the data) disagree on the number of classes.

    Args:
        student, teacher: any classifiers returning ``(N, C)`` logits.
        input_shape: one example's shape.
        num_classes: the data's class count, if known.

    Returns:
        The common class count.

    Raises:
        ConfigError: naming both widths.

    Example:
        >>> check_compatible(student, teacher, (1, 28, 28), 10)
        10
    """
    s, t = output_width(student, input_shape), output_width(teacher, input_shape)
    if s != t:
        raise ConfigError(f"teacher has {t} outputs but student has {s}: both must predict the same classes")
    if num_classes is not None and t != num_classes:
        raise ConfigError(f"teacher and student have {t} outputs but the data has {num_classes} classes")
    return t


class TeacherOutputs:
    """The teacher's logits for a batch: from a per-example cache (computed once) or computed on the fly.

    Args:
        teacher: any nn.Module; put in eval mode, never trained.
        train_data: the training set the batches' ``index`` refers to (needed to cache).
        policy: ``auto`` (cache when ``train_data`` is a fixed TensorData), ``always`` or ``never``.
        device: where the teacher runs.
        batch_size: batch size of the one caching pass.

    Example:
        >>> outputs = TeacherOutputs(teacher, data.train)
        >>> outputs(batch, device)  # (N, C) logits for batch.index
    """

    def __init__(self, teacher: nn.Module, train_data: Dataset | None = None, policy: str = "auto",
                 device: str | torch.device | None = "auto", batch_size: int = 1000):
        if policy == "always" and train_data is None:
            raise ConfigError("cache='always' needs the training data the batch indices refer to")
        self.teacher = teacher.eval()
        self.device = resolve_device(device)
        use_cache = policy == "always" or (policy == "auto" and isinstance(train_data, TensorData))
        self.cache = self._compute(train_data, batch_size) if use_cache else None

    @torch.no_grad()
    def _compute(self, data: Dataset, batch_size: int) -> torch.Tensor:
        self.teacher.to(self.device)
        outs = [self.teacher(b.x.to(self.device)).float().cpu() for b in batches(data, batch_size)]
        return torch.cat(outs)

    @property
    def cached(self) -> bool:
        return self.cache is not None

    @torch.no_grad()
    def __call__(self, batch: Batch, device: torch.device) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[batch.index.cpu()].to(device)
        self.teacher.to(device).eval()
        return self.teacher(batch.x.to(device)).float()


class DistillationLoss:
    """A trainer ``loss_fn`` that distills ``teacher`` into whatever model is being trained.

    Args:
        teacher: any nn.Module classifier (frozen: run under ``no_grad`` in eval mode).
        hparams: :class:`DistillHparams` (temperature, alpha, mode, cache policy).
        train_data: the training split (``data.train``), to cache teacher outputs by ``Batch.index``.
        device: where the caching pass runs.

    Example:
        >>> loss = DistillationLoss(teacher, DistillHparams(temperature=4, alpha=0.1), data.train)
        >>> train(student, data, TrainingHparams(steps="10ep"), loss_fn=loss)  # or pruning retraining, QAT, ...
    """

    def __init__(self, teacher: nn.Module, hparams: DistillHparams | None = None, train_data: Dataset | None = None,
                 device: str | torch.device | None = "auto"):
        self.hparams = hparams or DistillHparams()
        needs_teacher = self.hparams.alpha < 1.0
        self.teacher = TeacherOutputs(teacher, train_data, self.hparams.cache, device) if needs_teacher else None

    def __call__(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        labels = batch.y.to(outputs.device)
        teacher = self.teacher(batch, outputs.device) if self.teacher is not None else None
        if teacher is not None and teacher.shape != outputs.shape:
            raise ConfigError(f"teacher outputs {tuple(teacher.shape)} but student outputs {tuple(outputs.shape)}")
        hp = self.hparams
        if hp.mode == "logits":
            return logit_matching_loss(outputs, teacher, labels, hp.alpha)
        return kd_loss(outputs, teacher, labels, hp.temperature, hp.alpha)
