"""Evaluation of any classifier on any dataset."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.utils.data import Dataset

from netpress.data.base import batches
from netpress.errors import ConfigError
from netpress.modes import eval_mode


@dataclasses.dataclass
class EvalResult:
    loss: float
    accuracy: float
    examples: int


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``'auto'`` picks CUDA when available, else CPU.

    Raises:
        ConfigError: an unknown device name, or one this machine does not have (e.g. ``cuda`` without a GPU).
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if dev.type == "cpu":
        return dev
    backend = getattr(torch, dev.type, None)
    available = getattr(backend, "is_available", lambda: False)
    if not available() or (dev.index is not None and dev.index >= getattr(backend, "device_count", lambda: 1)()):
        raise ConfigError(f"device {device!r} is not available on this machine; use auto or cpu")
    return dev


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, batch_size: int = 1000, device: str | torch.device | None = None) -> EvalResult:
    """Mean cross-entropy and accuracy of ``model`` on ``data``.

    Args:
        model: any classifier returning logits.
        data: any Dataset of (input, label).
        batch_size: evaluation batch size.
        device: defaults to the model's own device.

    Returns:
        :class:`EvalResult` with ``loss``, ``accuracy`` (a fraction) and ``examples``.
    """
    total_loss, correct, n = 0.0, 0, 0
    for out, y in _outputs(model, data, batch_size, device):
        total_loss += nn.functional.cross_entropy(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        n += len(y)
    return EvalResult(total_loss / max(n, 1), correct / max(n, 1), n)


@torch.no_grad()
def correctness(model: nn.Module, data: Dataset, batch_size: int = 1000) -> torch.Tensor:
    """Whether ``model`` classifies each example of ``data`` correctly (for paired comparisons of two models).

    Args:
        model: any classifier returning logits.
        data: any Dataset of (input, label).
        batch_size: evaluation batch size.

    Returns:
        A bool tensor with one entry per example, in ``data``'s order.

    Example:
        >>> float(correctness(net, data.val).float().mean()) == evaluate(net, data.val).accuracy
        True
    """
    out = [(logits.argmax(1) == y).cpu() for logits, y in _outputs(model, data, batch_size, None)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _outputs(model: nn.Module, data: Dataset, batch_size: int, device):
    """``(logits, labels)`` per batch in eval mode on ``device`` (default: the model's); the mode is restored."""
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    with eval_mode(model):
        for batch in batches(data, batch_size):
            y = batch.y.to(device)
            yield model(batch.x.to(device)), y


def output_width(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Number of outputs (classes) of ``model`` for one input of ``input_shape``, from a zero probe (eval mode,
    no gradient; each submodule's mode is restored)."""
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    with eval_mode(model), torch.no_grad():
        out = model(torch.zeros(1, *input_shape, device=device))
    return int(out.shape[-1])
