"""Knowledge distillation (Hinton et al. 2015) and logit matching (Ba & Caruana 2014) as trainer losses.

A :class:`DistillationLoss` is a plain ``loss_fn(outputs, batch)`` for :func:`netpress.train.train`, so it can
drive any training stage: training a small student from scratch (:func:`distill`), retraining after pruning,
or quantization-aware training (a distillation-assisted stage of a recipe).

Example:
    >>> from netpress.distill import DistillHparams, DistillationLoss
    >>> loss = DistillationLoss(teacher, DistillHparams(temperature=4, alpha=0.1), data.train)
    >>> train(pruned_student, data, retrain_hp, loss_fn=loss)
"""
from netpress.distill.api import distill
from netpress.distill.hparams import DistillHparams
from netpress.distill.loss import (DistillationLoss, TeacherOutputs, check_compatible, kd_loss, logit_matching_loss,
                                   output_width)

__all__ = ["distill", "DistillHparams", "DistillationLoss", "TeacherOutputs", "check_compatible", "kd_loss",
           "logit_matching_loss", "output_width"]
