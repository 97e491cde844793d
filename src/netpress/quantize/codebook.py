"""The codebook parametrization: a weight that is ``decode_indices(indices, codebook)``, and how to attach one.

Shared by every quantizer that stores a lookup table (k-means sharing, uniform PTQ, ...); it sits just above
:mod:`~netpress.quantize.base` so those quantizers need not import each other.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from netpress.quantize.base import WeightQuantizer
from netpress.quantize.codes import Codes, decode_indices, index_dtype


class CodebookWeight(WeightQuantizer):
    """Parametrization whose value is ``decode_indices(indices, codebook, axis)``, whatever its input.

    Args:
        indices: integers in ``[-1, 2**bits)``, the weight's shape; -1 at pruned positions (stored in the
            smallest signed type that holds them, :func:`~netpress.quantize.codes.index_dtype`).
        codebook: float values ``[k]`` (or ``[channels, k]`` with ``axis``).
        bits: bits per index.
        axis: channel axis of a 2-D codebook.
        method: the quantizer's name, reported in :class:`Codes`.
        trainable: make the codebook a learnable Parameter (centroid fine-tuning), else a buffer.
    """

    stored_codes = True

    def __init__(self, indices: torch.Tensor, codebook: torch.Tensor, bits: int, axis: int | None = None,
                 method: str = "kmeans", trainable: bool = True):
        super().__init__()
        if indices.numel() and (int(indices.min()) < -1 or int(indices.max()) >= 1 << bits):
            raise ValueError(f"indices outside [-1, 2**{bits})")
        self.register_buffer("indices", indices.to(index_dtype(bits)))
        if trainable:
            self.codebook = nn.Parameter(codebook.detach().clone().float())
        else:
            self.register_buffer("codebook", codebook.detach().clone().float())
        self.bits, self.axis, self.method = bits, axis, method

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return decode_indices(self.indices, self.codebook.to(w.dtype), self.axis)

    def codes(self, w: torch.Tensor | None = None) -> Codes:
        return Codes(self.indices.clone(), self.codebook.detach().clone(), self.bits, self.axis, self.method)


def attach(module: nn.Module, attr: str, quantizer: WeightQuantizer) -> None:
    """Register ``quantizer`` last on ``module.attr``; a quantizer that ignores its input freezes the original."""
    parametrize.register_parametrization(module, attr, quantizer)
    if isinstance(quantizer, CodebookWeight):
        module.parametrizations[attr].original.requires_grad_(False)


def trainable_codebooks(model: nn.Module, names) -> None:
    """Make the codebooks of the table-form quantizers on ``names`` (plain names) learnable, in place: centroid
    fine-tuning after a one-shot solver that leaves them frozen (e.g. GPTQ's ``kmeans`` / ``ecsq`` methods).

    Raises:
        KeyError: a name that is not quantized.

    Example:
        >>> trainable_codebooks(oneshot(net, batches, quantize=GPTQHparams(method="ecsq")), ["fc1.weight"])
    """
    from netpress.quantize.base import quantized_tensors

    found = quantized_tensors(model)
    for name in names:
        module, attr, quantizer, position = found[name]
        if isinstance(quantizer, CodebookWeight) and not isinstance(quantizer.codebook, nn.Parameter):
            module.parametrizations[attr][position] = CodebookWeight(
                quantizer.indices, quantizer.codebook, quantizer.bits, quantizer.axis, quantizer.method)


@torch.no_grad()
def round_codebooks(model: nn.Module, dtype: torch.dtype = torch.float16) -> list[str]:
    """Round every :class:`CodebookWeight`'s codebook to the nearest ``dtype`` values, in place (kept float32).

    A codebook of float16 values is stored in half the bytes with the decoded weights bit-identical, so rounding
    before saving makes the model in memory equal to the one the file decodes to.

    Args:
        model: a model with codebook-quantized weights (k-means, ECSQ, soft weight-sharing, ...).
        dtype: the float type whose values the codebooks take (``torch.float16`` or ``torch.bfloat16``).

    Returns:
        The plain names of the tensors whose codebooks were rounded.

    Example:
        >>> round_codebooks(share_weights(net, bits=4))
        ['fc1.weight', 'fc2.weight', 'fc3.weight']
    """
    from netpress.quantize.base import quantized_tensors

    names = []
    for name, (_, _, quantizer, _) in quantized_tensors(model).items():
        if isinstance(quantizer, CodebookWeight):
            quantizer.codebook.copy_(quantizer.codebook.to(dtype).float())
            names.append(name)
    return names
