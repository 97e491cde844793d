"""Uniform affine quantization: x_int = clamp(round(x / s) + z, qmin, qmax), x_hat = (x_int - z) * s.

Per tensor, per channel (any axis) or per group (``group_size`` consecutive values along an axis); 1-16 bits;
symmetric or asymmetric; signed or unsigned. The arithmetic is torch's own (``x * (1/s)`` in float32,
round-half-even, clamp, ``(q - z) * s``), so at 8 bits it matches ``torch.fake_quantize_per_tensor_affine`` and
``torch.fake_quantize_per_channel_affine`` bit for bit.

Example:
    >>> spec = UniformSpec(bits=4, granularity="channel", calibration="mse")
    >>> net = quantize_weights(net, spec)            # frozen uniform codes on every Linear, Conv and Embedding weight
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.quantize.base import (WeightQuantizer, check_finite, per_name, quantizer_of, remove_quantizer,
                                    selected_tensors)
from netpress.quantize.affine import dequantize, fake_quantize, qparams, quantize  # noqa: F401  (public here too)
from netpress.quantize.calibration import CALIBRATORS
from netpress.quantize.codebook import CodebookWeight, attach
from netpress.quantize.codes import PRUNED, Codes, decode_affine, expand_slices, index_dtype

GRANULARITIES = ("tensor", "channel", "group")
CODES_CHUNK = 1 << 20  # values per block of slices when weights are turned into integer codes


@dataclasses.dataclass(frozen=True)
class UniformSpec(Hparams):
    """A uniform affine quantizer.

    Attributes:
        bits: 1-16.
        symmetric: alpha = -beta (zero point fixed: 0 signed, mid-range unsigned); else the tight affine range.
        signed: integer range [-2^(b-1), 2^(b-1)-1], else [0, 2^b - 1].
        granularity: ``tensor``, ``channel`` or ``group``.
        axis: the channel axis (``channel``) or the axis groups run along (``group``).
        group_size: values per group along ``axis`` (``group``); must divide that axis.
        calibration: a registered calibrator: ``minmax``, ``percentile``, ``mse``, ``aciq_laplace``, ``aciq_gaussian``.
        percentile: for ``percentile``, in (50, 100].
        scale_dtype: ``float32``, or ``float16``: scales rounded to half precision when calibrated, so a
            ``.netp`` file stores them in 2 bytes each, losslessly.
    """

    bits: int = 8
    symmetric: bool = True
    signed: bool = True
    granularity: str = "tensor"
    axis: int = 0
    group_size: int = 0
    calibration: str = "minmax"
    percentile: float = 99.99
    scale_dtype: str = "float32"

    def validate(self) -> None:
        require(isinstance(self.bits, int) and not isinstance(self.bits, bool) and 1 <= self.bits <= 16,
                f"bits must be an integer from 1 to 16, got {self.bits!r}")
        require(self.granularity in GRANULARITIES,
                f"unknown granularity {self.granularity!r}; known: {', '.join(GRANULARITIES)}")
        require(self.granularity != "group" or self.group_size > 0, "granularity 'group' needs group_size > 0")
        require(self.calibration in CALIBRATORS,
                f"unknown calibration {self.calibration!r}; known: {', '.join(CALIBRATORS.names())}")
        require(50 < self.percentile <= 100, f"percentile must be in (50, 100], got {self.percentile}")
        require(self.scale_dtype in ("float32", "float16"),
                f"scale_dtype must be float32 or float16, got {self.scale_dtype!r}")

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


def slices_2d(w: torch.Tensor, spec: UniformSpec) -> torch.Tensor:
    """The ``[slices, values]`` view a range is calibrated over (1 row; a row per channel; a row per group)."""
    if spec.granularity == "tensor":
        return w.reshape(1, -1)
    axis = _axis(w, spec)
    if spec.granularity == "channel":
        return w.movedim(axis, 0).reshape(w.shape[axis], -1)
    return w.movedim(axis, -1).reshape(-1, spec.group_size)


def expand(per_slice: torch.Tensor, w: torch.Tensor, spec: UniformSpec) -> torch.Tensor:
    """Broadcast per-slice values (scale, zero point) back to ``w``'s shape (see :func:`expand_slices`)."""
    axis = None if spec.granularity == "tensor" else _axis(w, spec)
    return expand_slices(per_slice, w.shape, axis, spec.group_size if spec.granularity == "group" else 0)


def _axis(w: torch.Tensor, spec: UniformSpec) -> int:
    return spec.axis % w.dim()


def check_tensor(name: str, w: torch.Tensor, spec: UniformSpec) -> None:
    """Raise :class:`ConfigError` if ``spec`` cannot quantize ``w`` (bad axis, group size, NaN/Inf)."""
    check_finite(name, w)
    if spec.granularity != "tensor" and not -w.dim() <= spec.axis < w.dim():
        raise ConfigError(f"{name}: axis {spec.axis} out of range for shape {tuple(w.shape)}")
    if spec.granularity == "group" and w.shape[_axis(w, spec)] % spec.group_size:
        raise ConfigError(f"{name}: group_size {spec.group_size} does not divide axis {spec.axis} "
                          f"(size {w.shape[_axis(w, spec)]})")


def calibrate(w: torch.Tensor, spec: UniformSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slice ``(scale, zero_point)`` of ``w`` with ``spec.calibration``.

    Example:
        >>> scale, zp = calibrate(torch.randn(16, 8), UniformSpec(bits=4, granularity="channel"))
        >>> scale.shape
        torch.Size([16])
    """
    lo, hi = CALIBRATORS.get(spec.calibration)(slices_2d(w.detach().float(), spec), spec)
    return qparams(lo, hi, spec)


def uniform_codes(w: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: UniformSpec) -> Codes:
    """:class:`Codes` of ``w`` quantized with per-slice ``scale``/``zero_point``; exact zeros get index -1.

    Per tensor: a 1-D codebook ``s * (q - z)`` over all integer levels. Per channel and per group: the affine form
    (indices ``q - qmin``, the scales and zero points, ``axis`` and ``group_size``), decoded with the same float
    ops as :func:`dequantize`.

    Example:
        >>> s, z = calibrate(w, spec); codes = uniform_codes(w, s, z, spec)
        >>> torch.equal(codes.decode(), fake_quantize(w, expand(s, w, spec), expand(z, w, spec), spec.qmin, spec.qmax))
        True
    """
    indices = _indices(w, scale, zero_point, spec)
    if spec.granularity == "tensor":
        levels = torch.arange(spec.qmin, spec.qmax + 1, dtype=torch.int64)
        book = dequantize(levels, scale.reshape(()), zero_point.reshape(()))
        return Codes(indices, book, spec.bits, None, "uniform")
    return Codes(indices, None, spec.bits, _axis(w, spec), "uniform", scale=scale.float().reshape(-1).clone(),
                 zero_point=zero_point.to(torch.int64).reshape(-1).clone(),
                 group_size=spec.group_size if spec.granularity == "group" else 0, qmin=spec.qmin)


def _indices(w: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, spec: UniformSpec) -> torch.Tensor:
    """``quantize(w) - qmin`` (-1 at exact zeros) in :func:`index_dtype`; per tensor or per channel, blocks of
    ``CODES_CHUNK`` values' worth of slices at a time (the same elementwise ops, bounded temporaries)."""
    if spec.granularity == "group" or w.dim() == 0:
        q = quantize(w, expand(scale, w, spec), expand(zero_point, w, spec), spec.qmin, spec.qmax)
        return (q - spec.qmin).masked_fill(w == 0, PRUNED).to(index_dtype(spec.bits))
    axis = 0 if spec.granularity == "tensor" else _axis(w, spec)
    per_slice = scale.reshape(-1).numel() > 1
    out = torch.empty(w.shape, dtype=index_dtype(spec.bits), device=w.device)
    step = max(1, CODES_CHUNK // max(w.numel() // max(w.shape[axis], 1), 1))
    for start in range(0, w.shape[axis], step):
        part = w.narrow(axis, start, min(step, w.shape[axis] - start))
        s, z = (scale.reshape(-1)[start:start + step], zero_point.reshape(-1)[start:start + step]) if per_slice \
            else (scale, zero_point)
        q = quantize(part, expand(s, part, spec), expand(z, part, spec), spec.qmin, spec.qmax)
        out.narrow(axis, start, part.shape[axis]).copy_((q - spec.qmin).masked_fill_(part == 0, PRUNED))
    return out


class AffineWeight(WeightQuantizer):
    """Frozen parametrization whose value is the affine :class:`Codes` it holds (``codes.decode()``).

    Args:
        codes: affine-form codes (integer indices, per-slice scale and zero point).
    """

    stored_codes = True

    def __init__(self, codes: Codes):
        super().__init__()
        if not codes.affine:
            raise ValueError("AffineWeight holds affine Codes (scale and zero point)")
        self.register_buffer("indices", codes.indices.to(index_dtype(codes.bits)))
        self.register_buffer("scale", codes.scale.float())
        self.register_buffer("zero_point", codes.zero_point.to(torch.int64))
        self.bits, self.axis, self.group_size, self.qmin, self.method = (codes.bits, codes.axis, codes.group_size,
                                                                         codes.qmin, codes.method)

    def codes(self, w: torch.Tensor | None = None) -> Codes:
        return Codes(self.indices.clone(), None, self.bits, self.axis, self.method, scale=self.scale.clone(),
                     zero_point=self.zero_point.clone(), group_size=self.group_size, qmin=self.qmin)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return decode_affine(self.indices, self.scale, self.zero_point, self.qmin, self.axis,
                             self.group_size).to(w.dtype)


def frozen_quantizer(codes: Codes) -> WeightQuantizer:
    """The frozen parametrization reproducing ``codes`` (affine or table form)."""
    if codes.affine:
        return AffineWeight(codes)
    return CodebookWeight(codes.indices, codes.codebook, codes.bits, codes.axis, codes.method, trainable=False)


def quantize_weights(model: nn.Module, spec: UniformSpec | dict[str, UniformSpec] = UniformSpec(), *,
                     names: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> nn.Module:
    """Post-training uniform quantization of weights: each becomes frozen codes (a :class:`CodebookWeight`).

    Args:
        model: any module, changed in place.
        spec: one :class:`UniformSpec` or ``{plain_name: UniformSpec}`` (mixed precision).
        names: plain names (names, patterns or a Selector; default: Linear, Conv, Embedding weights).
        exclude: plain names to leave alone.

    Returns:
        ``model``; :func:`~netpress.quantize.export_codes` gives each tensor's :class:`Codes`.

    Raises:
        ConfigError: NaN/Inf weights, a group size that does not divide its axis, a bad axis; before any change.

    Example:
        >>> quantize_weights(net, UniformSpec(bits=4, granularity="channel", calibration="mse"))
    """
    tensors = selected_tensors(model, names if not isinstance(spec, dict) or names else list(spec), exclude)
    specs = spec_per_tensor(spec, tensors)
    values = {n: getattr(m, a).detach() for n, (m, a) in tensors.items()}
    for name, w in values.items():
        check_tensor(name, w, specs[name])
    for name, (module, attr) in tensors.items():
        if quantizer_of(module, attr) is not None:
            remove_quantizer(module, attr)
        attach(module, attr, frozen_quantizer(uniform_codes(values[name], *calibrate(values[name], specs[name]),
                                                            specs[name])))
    return model


def spec_per_tensor(spec: UniformSpec | dict[str, UniformSpec], names) -> dict[str, UniformSpec]:
    """One spec per tensor name (a dict must cover exactly the selected names)."""
    if isinstance(spec, dict):
        return per_name(spec, names, "spec")
    return {n: spec for n in names}


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class _GradScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, factor: float):
        ctx.factor = factor
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * ctx.factor, None


class STEFakeQuantize(torch.autograd.Function):
    """Fake quantization with the straight-through estimator.

    Forward: exactly :func:`fake_quantize`. Backward: the identity (``clipped=False``) or the identity inside the
    clipping range ``[(qmin - z) s, (qmax - z) s]`` and zero outside (``clipped=True``, as torch's fake-quantize).
    """

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin: int, qmax: int, clipped: bool):
        q = quantize(x, scale, zero_point, qmin, qmax)
        if clipped:
            raw = torch.round(x.float() * torch.reciprocal(scale.float())) + zero_point
            ctx.save_for_backward((raw >= qmin) & (raw <= qmax))
        ctx.clipped = clipped
        return dequantize(q, scale, zero_point).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        if ctx.clipped:
            (inside,) = ctx.saved_tensors
            g = g * inside
        return g, None, None, None, None, None


class UniformQAT(WeightQuantizer):
    """Trainable fake-quantized weight: float weights learn through the STE; the range is re-calibrated each
    forward (``lsq=False``) or is a learned per-slice scale (``lsq=True``, LSQ: Esser et al. 2020).

    Args:
        w: the initial weight (sets the LSQ scale init and checks the spec).
        spec: the quantizer.
        ste: ``clipped`` (zero gradient outside the range) or ``identity``.
        lsq: learn the scales.
    """

    def __init__(self, w: torch.Tensor, spec: UniformSpec, ste: str = "clipped", lsq: bool = False):
        super().__init__()
        if ste not in ("clipped", "identity"):
            raise ConfigError(f"unknown ste {ste!r}; known: clipped, identity")
        if lsq and not spec.symmetric:
            raise ConfigError("LSQ learns a scale with a fixed zero point: use a symmetric spec")
        self.spec, self.ste, self.lsq = spec, ste, lsq
        scale, zp = calibrate(w, spec)
        self.register_buffer("zero_point", zp)
        if lsq:
            self.scale = nn.Parameter(scale)
        else:
            self.register_buffer("scale", scale)

    def qparams(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.lsq:
            with torch.no_grad():
                self.scale, self.zero_point = calibrate(w, self.spec)
        return self.scale, self.zero_point

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale, zp = self.qparams(w)
        s, z = expand(scale, w, self.spec), expand(zp, w, self.spec)
        if not self.lsq:
            return STEFakeQuantize.apply(w, s, z, self.spec.qmin, self.spec.qmax, self.ste == "clipped")
        per_slice = w.numel() // scale.numel()
        s = _GradScale.apply(s.clamp_min(1e-8), 1.0 / math.sqrt(per_slice * max(self.spec.qmax, 1)))
        v = _RoundSTE.apply(w * torch.reciprocal(s)) + z
        return (v.clamp(self.spec.qmin, self.spec.qmax) - z) * s

    def codes(self, w: torch.Tensor) -> Codes:
        scale, zp = (self.scale.detach().clamp_min(1e-8), self.zero_point) if self.lsq else calibrate(w, self.spec)
        return uniform_codes(w.detach(), scale, zp, self.spec)
