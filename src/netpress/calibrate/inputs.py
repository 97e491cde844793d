"""Calling any model on any calibration batch, and reading one tensor out of whatever it returns.

A batch is a tensor (``model(x)``), a tuple/list (``model(*t)``) or a mapping such as tokenizer output
(``model(**d)``). Outputs may be a tensor, a tuple/list, a mapping or a Hugging Face ``ModelOutput``; the
tensor compared is ``last_hidden_state`` when present, else the first tensor found.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable

import torch
from torch import nn

from netpress.errors import DataError


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor inside moved to ``device`` (tensors, tuples, lists, mappings)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def call_model(model: nn.Module, batch: Any) -> Any:
    """Run ``model`` on one batch: ``model(**d)`` for a mapping, ``model(*t)`` for a tuple/list, else ``model(x)``.

    Args:
        model: any module.
        batch: a tensor, tuple/list or mapping; moved to the model's device first.

    Returns:
        Whatever the model returns.

    Example:
        >>> call_model(bert, tokenizer(["hi"], return_tensors="pt"))
    """
    batch = to_device(batch, model_device(model))
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def first_tensor(output: Any) -> torch.Tensor:
    """The tensor that stands for a model's output: ``last_hidden_state`` if present, else the first tensor.

    Args:
        output: a tensor, tuple/list, mapping or ``ModelOutput``.

    Returns:
        A tensor.

    Raises:
        DataError: the output holds no tensor.

    Example:
        >>> first_tensor((torch.ones(2), torch.zeros(1)))
        tensor([1., 1.])
    """
    if isinstance(output, torch.Tensor):
        return output
    if getattr(output, "last_hidden_state", None) is not None:
        return output.last_hidden_state
    values = output.values() if isinstance(output, Mapping) else output if isinstance(output, (tuple, list)) else ()
    for v in values:
        try:
            return first_tensor(v)
        except DataError:
            continue
    raise DataError(f"model output of type {type(output).__name__} holds no tensor")


def check_inputs(inputs: Iterable[Any]) -> list[Any]:
    """The calibration batches as a list (so they can be replayed), raising :class:`DataError` if empty.

    Batches are kept as given (usually on CPU); each is moved to the model's device only while it runs.
    """
    if isinstance(inputs, (torch.Tensor, Mapping)):
        inputs = [inputs]
    batches = list(inputs)
    if not batches:
        raise DataError("calibration needs at least one input batch")
    return batches
