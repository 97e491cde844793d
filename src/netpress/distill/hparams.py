"""Distillation hyperparameters."""
from __future__ import annotations

import dataclasses

from netpress.hparams import Hparams, require

MODES = ("kd", "logits")
CACHE = ("auto", "always", "never")


@dataclasses.dataclass(frozen=True)
class DistillHparams(Hparams):
    """How a student learns from a teacher.

    Attributes:
        temperature: softmax temperature T (> 0) of the ``kd`` loss; ignored by ``logits``.
        alpha: weight of the hard-label cross-entropy, in [0, 1]; the teacher term gets ``1 - alpha``.
        mode: ``kd`` (Hinton et al. 2015: ``alpha*CE + (1-alpha)*T^2*KL(p_teacher^T || p_student^T)``) or
            ``logits`` (Ba & Caruana 2014: ``alpha*CE + (1-alpha)*MSE(student logits, teacher logits)``).
        cache: ``auto`` caches teacher outputs once per training example when the training set is a fixed
            in-memory :class:`~netpress.data.TensorData` (so an index always means the same input);
            ``always`` forces the cache; ``never`` runs the teacher on every batch (needed with augmentation).

    Example:
        >>> DistillHparams(temperature=4.0, alpha=0.1)
    """

    temperature: float = 4.0
    alpha: float = 0.1
    mode: str = "kd"
    cache: str = "auto"

    def validate(self) -> None:
        require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        require(0.0 <= self.alpha <= 1.0, f"alpha must be in [0, 1], got {self.alpha}")
        require(self.mode in MODES, f"unknown distillation mode {self.mode!r}; known: {', '.join(MODES)}")
        require(self.cache in CACHE, f"unknown cache policy {self.cache!r}; known: {', '.join(CACHE)}")
