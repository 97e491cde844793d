"""Zero-shot (data-free) post-training quantization, ZeroQ-style (Cai et al. 2020).

Random inputs are optimised so that the batch statistics entering every BatchNorm layer match the layer's
running mean and variance (the "distilled data"); PTQ then calibrates its activation ranges (and bias
correction) on those inputs alone, so no training or calibration data is ever read.

Example:
    >>> zeroshot_ptq(net, input_shape=(1, 28, 28), hp=PTQHparams(w_bits=8, a_bits=8))
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.quantize.ptq import PTQHparams, ptq

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclasses.dataclass(frozen=True)
class ZeroShotHparams(Hparams):
    """Synthesis of calibration inputs from BatchNorm statistics.

    Attributes:
        examples: synthetic inputs to make.
        batch_size: inputs optimised together (their joint statistics are matched).
        iterations: Adam steps per batch.
        lr: Adam learning rate on the inputs.
        seed: seed of the initial noise.
    """

    examples: int = 256
    batch_size: int = 64
    iterations: int = 200
    lr: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        require(self.examples >= 1, f"examples must be >= 1, got {self.examples}")
        require(self.batch_size >= 2, f"batch_size must be >= 2 (batch statistics), got {self.batch_size}")
        require(self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")


class SyntheticSet(torch.utils.data.Dataset):
    """In-memory inputs with dummy labels, readable by :func:`~netpress.quantize.calibrate_activations`."""

    def __init__(self, x: torch.Tensor):
        self.x = x
        self.y = torch.zeros(len(x), dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def batchnorm_layers(model: nn.Module) -> dict[str, nn.Module]:
    """BatchNorm layers that track running statistics, by name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, _BN) and m.running_mean is not None}


def bn_statistics_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ZeroQ's loss: ``sum_l ||mean_l(x) - running_mean_l||_2 + ||std_l(x) - sqrt(running_var_l)||_2``.

    Args:
        model: a model with BatchNorm layers; run in eval mode (running statistics untouched).
        x: an input batch.

    Returns:
        The scalar loss (differentiable in ``x``).

    Raises:
        ConfigError: the model has no BatchNorm layer with running statistics.

    Example:
        >>> bn_statistics_loss(net.eval(), torch.randn(8, 1, 28, 28))
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise ConfigError("zero-shot quantization needs BatchNorm layers with running statistics; "
                          "this model has none (calibrate with real data instead)")
    terms, handles = [], []

    def hook(module, args):
        h = args[0]
        dims = [d for d in range(h.dim()) if d != 1]
        mean, var = h.mean(dim=dims), h.var(dim=dims, unbiased=False)
        terms.append(torch.linalg.vector_norm(mean - module.running_mean)
                     + torch.linalg.vector_norm((var + module.eps).sqrt() - (module.running_var + module.eps).sqrt()))

    for m in layers.values():
        handles.append(m.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return torch.stack(terms).sum()


def synthesize_inputs(model: nn.Module, input_shape: Sequence[int], hp: ZeroShotHparams = ZeroShotHparams()
                      ) -> torch.Tensor:
    """Inputs whose BatchNorm batch statistics match the model's running statistics (no data read).

    Args:
        model: a trained model with BatchNorm layers (not changed).
        input_shape: one input's shape, e.g. ``(1, 28, 28)``.
        hp: :class:`ZeroShotHparams`.

    Returns:
        ``[hp.examples, *input_shape]`` float inputs.

    Raises:
        ConfigError: no BatchNorm layer; checked before any work.

    Example:
        >>> x = synthesize_inputs(net, (1, 28, 28), ZeroShotHparams(examples=64))
    """
    if not batchnorm_layers(model):
        bn_statistics_loss(model, torch.empty(0))  # raises the ConfigError
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(hp.seed)
    out = []
    for start in range(0, hp.examples, hp.batch_size):
        n = max(2, min(hp.batch_size, hp.examples - start))
        x = torch.randn(n, *input_shape, generator=gen).to(device).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=hp.lr)
        for _ in range(hp.iterations):
            loss = bn_statistics_loss(model, x)
            (grad,) = torch.autograd.grad(loss, [x])  # parameters' .grad untouched
            opt.zero_grad(set_to_none=True)
            x.grad = grad
            opt.step()
        out.append(x.detach()[: hp.examples - start])
    return torch.cat(out)


def zeroshot_ptq(model: nn.Module, input_shape: Sequence[int], hp: PTQHparams = PTQHparams(),
                 zs: ZeroShotHparams = ZeroShotHparams(), **ptq_kwargs) -> nn.Module:
    """Data-free PTQ: synthesize inputs from BatchNorm statistics, then :func:`~netpress.quantize.ptq` on them.

    Args:
        model: a trained model with BatchNorm layers, changed in place.
        input_shape: one input's shape.
        hp: :class:`~netpress.quantize.PTQHparams` (``calibration_examples`` is capped at ``zs.examples``).
        zs: :class:`ZeroShotHparams`.
        **ptq_kwargs: ``names`` / ``exclude`` for :func:`~netpress.quantize.ptq`.

    Returns:
        ``model``, quantized and calibrated on synthetic inputs only.

    Raises:
        ConfigError: no BatchNorm layer (before any change).

    Example:
        >>> zeroshot_ptq(net, (3, 32, 32), PTQHparams(w_bits=4, a_bits=8), ZeroShotHparams(iterations=100))
    """
    x = synthesize_inputs(model, input_shape, zs)
    return ptq(model, SyntheticSet(x.cpu()), hp, **ptq_kwargs)
