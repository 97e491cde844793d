"""The "rethinking the value of network pruning" control (Liu et al. 2019): fine-tune vs train from scratch.

The pruned network (its masks, or its smaller architecture after surgery) is trained two ways: fine-tuned from
its pruned weights, and trained from a fresh random initialisation of the same architecture and masks
(``Scratch-E``: the schedule you give, e.g. the dense model's). If scratch matches fine-tuning, the pruned
*architecture*, not the inherited weights, carries the result.

Example:
    >>> res = rethinking_control(pruned, data, finetune_hp=TrainingHparams(steps="2ep", lr=1e-3),
    ...                          scratch_hp=TrainingHparams(steps="20ep"), seed=0)
    >>> res.finetuned.final_test_accuracy, res.scratch.final_test_accuracy
"""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from netpress.data import DataSplits
from netpress.prune import apply_masks, get_masks, strip
from netpress.train import TrainingHparams, TrainResult, train


@dataclasses.dataclass
class RethinkingResult:
    """Both arms of the control.

    Attributes:
        finetuned: training result of the pruned weights fine-tuned.
        scratch: training result of the same architecture/masks from a fresh init.
        finetuned_model: the fine-tuned network.
        scratch_model: the network trained from scratch.
    """

    finetuned: TrainResult
    scratch: TrainResult
    finetuned_model: nn.Module
    scratch_model: nn.Module

    def summary(self) -> dict:
        """Final test accuracies and the scratch-minus-finetuned gap."""
        f, s = self.finetuned.final_test_accuracy, self.scratch.final_test_accuracy
        return {"finetuned_test_accuracy": f, "scratch_test_accuracy": s, "scratch_minus_finetuned": s - f}


def scratch_init(pruned: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``pruned`` with every layer re-initialised (``reset_parameters``) under ``seed``, masks kept.

    Modules are reset in ``named_modules`` order, so the draw equals building a fresh model of the same
    architecture under ``torch.manual_seed(seed)`` (for models whose constructors only create these layers).

    Args:
        pruned: the pruned network (not changed).
        seed: seed of the new initialisation.

    Returns:
        The re-initialised copy, carrying the same masks (pruned weights exactly zero).

    Example:
        >>> fresh = scratch_init(pruned, seed=1)
        >>> get_masks(fresh).keys() == get_masks(pruned).keys()
        True
    """
    masks = {n: m.clone() for n, m in get_masks(pruned).items()}
    model = strip(copy.deepcopy(pruned))
    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return apply_masks(model, masks) if masks else model


def train_from_scratch(pruned: nn.Module, data: DataSplits, hp: TrainingHparams, *, seed: int = 0,
                       **train_kwargs) -> tuple[nn.Module, TrainResult]:
    """The scratch arm alone: :func:`scratch_init` of ``pruned`` trained with ``hp`` (for a pruned model whose
    fine-tuned arm already exists, e.g. ``netpress prune --control scratch``).

    Args:
        pruned: the pruned (masked or thinned) network; not changed.
        data: train/val/test splits.
        hp: the schedule; Scratch-E gives it the original network's schedule.
        seed: seed of the fresh initialisation.
        **train_kwargs: passed to :func:`netpress.train.train`.

    Returns:
        ``(model, result)``: the network trained from scratch (same masks / architecture) and its training result.

    Example:
        >>> model, result = train_from_scratch(pruned, data, TrainingHparams(steps="20ep"), seed=1)
        >>> result.final_test_accuracy
    """
    model = scratch_init(pruned, seed)
    return model, train(model, data, hp, desc="scratch", **train_kwargs)


def rethinking_control(pruned: nn.Module, data: DataSplits, finetune_hp: TrainingHparams,
                       scratch_hp: TrainingHparams | None = None, *, seed: int = 0, **train_kwargs
                       ) -> RethinkingResult:
    """Fine-tune the pruned network and, separately, train its architecture/masks from scratch.

    Args:
        pruned: the pruned network (masks via :func:`netpress.prune.apply_masks`, or a smaller dense
            architecture); not changed, both arms train copies.
        data: train/val/test splits.
        finetune_hp: schedule of the fine-tuning arm.
        scratch_hp: schedule of the scratch arm (default: ``finetune_hp``); Liu et al. give it the full training
            schedule of the original network (Scratch-E).
        seed: seed of the scratch arm's initialisation.
        **train_kwargs: passed to :func:`netpress.train.train` (``device``, ``progress``, ...).

    Returns:
        :class:`RethinkingResult`.

    Example:
        >>> rethinking_control(pruned, load_data("synthetic"), TrainingHparams(steps="1ep")).summary()
    """
    scratch_hp = scratch_hp or finetune_hp
    finetuned_model = copy.deepcopy(pruned)
    finetuned = train(finetuned_model, data, finetune_hp, desc="finetune", **train_kwargs)
    scratch_model, scratch = train_from_scratch(pruned, data, scratch_hp, seed=seed, **train_kwargs)
    return RethinkingResult(finetuned, scratch, finetuned_model, scratch_model)
