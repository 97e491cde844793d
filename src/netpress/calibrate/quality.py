"""Quality of a compressed model: how far its outputs move from the original model's on calibration inputs.

:class:`OutputQuality` records the original model's outputs once (the tensor :func:`first_tensor` picks, on CPU,
float32: memory is the size of the outputs of the calibration set) and scores any later model against them.
Scores are losses: 0 for the original model, larger is worse.

Example:
    >>> q = OutputQuality(net, batches, loss="cosine")
    >>> q(compressed_net)            # mean (1 - cosine) over output vectors
    0.0031
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Union

import torch
from torch import nn

from netpress.calibrate.inputs import call_model, check_inputs, first_tensor
from netpress.errors import ConfigError
from netpress.modes import eval_mode
from netpress.registry import Registry

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (output, reference) -> (sum, count)
QualityFn = Callable[[nn.Module], float]
LOSSES: Registry[Loss] = Registry("quality loss")


@LOSSES.register("mse")
def mse(out: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed squared error and the number of values (mean squared error over all output values)."""
    return ((out - ref) ** 2).sum(), ref.numel()


@LOSSES.register("cosine")
def cosine(out: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed ``1 - cos`` over output vectors (the last dimension) and their number."""
    out, ref = out.reshape(-1, out.shape[-1]), ref.reshape(-1, ref.shape[-1])
    return (1 - nn.functional.cosine_similarity(out, ref, dim=1)).sum(), ref.shape[0]


class OutputQuality:
    """Distance of a model's outputs from the original model's, on fixed calibration batches.

    Args:
        model: the original model (run once here, not changed).
        inputs: calibration batches (tensors, tuples or mappings).
        loss: ``mse``, ``cosine`` or a callable ``loss(output, reference) -> tensor`` (a mean over the batch;
            batches are then weighted equally).

    Example:
        >>> quality = OutputQuality(net, [x[:256]], loss="mse")
        >>> quality(net)
        0.0
    """

    def __init__(self, model: nn.Module, inputs: Iterable[Any], loss: str | Callable = "mse"):
        self.loss = LOSSES.get(loss) if isinstance(loss, str) else loss
        if not callable(self.loss):
            raise ConfigError(f"quality loss must be a name ({', '.join(LOSSES.names())}) or a callable")
        self.inputs = check_inputs(inputs)
        self.reference = [t.detach().float().cpu() for t in _outputs(model, self.inputs)]

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> float:
        total, count = 0.0, 0
        for out, ref in zip(_outputs(model, self.inputs), self.reference):
            value = self.loss(out.float().cpu(), ref)
            s, n = value if isinstance(value, tuple) else (value, 1)
            total, count = total + float(s), count + n
        return total / max(count, 1)


@torch.no_grad()
def _outputs(model: nn.Module, inputs: list[Any]):
    with eval_mode(model):
        for batch in inputs:
            yield first_tensor(call_model(model, batch))


def make_quality(model: nn.Module, inputs: Iterable[Any], quality: Union[str, QualityFn, None]) -> QualityFn:
    """A quality function: ``None`` -> output MSE, a loss name -> :class:`OutputQuality`, a callable as is.

    Example:
        >>> make_quality(net, batches, "cosine")(net)
        0.0
    """
    if quality is None or isinstance(quality, str):
        return OutputQuality(model, inputs, quality or "mse")
    if not callable(quality):
        raise ConfigError(f"quality must be None, a loss name or a callable model -> float, got {quality!r}")
    return quality
