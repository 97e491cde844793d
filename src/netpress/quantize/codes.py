"""The contract between quantizers and the encoder: a weight as integer indices into a codebook.

Every quantizer that shares or discretises weights can describe each quantized tensor as :class:`Codes`.
The encoder (:mod:`netpress.encode`) stores exactly these, and ``Codes.decode()`` rebuilds the float tensor
bit-identically to what the quantized model computes.
"""
from __future__ import annotations

import dataclasses
import math

import torch

PRUNED = -1  # index of a weight that is exactly zero because it was pruned
DECODE_CHUNK = 1 << 20  # indices gathered per step when narrow indices are decoded without autograd


@dataclasses.dataclass
class Codes:
    """A quantized tensor, in one of two forms.

    Table form (k-means, per-tensor uniform, binary, ...): ``codebook[indices]``.
    Affine form (per-channel / per-group uniform; ``scale`` given, ``codebook`` None): integer codes
    ``q = indices + qmin`` dequantized as ``(q - zero_point) * scale`` per slice, with exactly the float ops of
    :func:`netpress.quantize.uniform.dequantize`, so the decoded tensor equals the quantizer's output bit for bit.

    Attributes:
        indices: integer tensor of the weight's shape; ``PRUNED`` (-1) marks pruned (zero) positions.
        codebook: float32 values ``[k]`` or ``[channels, k]`` (per slice along ``axis``); None in affine form.
        bits: bits per index (k <= 2**bits; affine: indices in ``[0, 2**bits)``).
        axis: the channel axis (2-D codebook, per-channel affine) or the axis groups run along (per-group affine).
        method: the quantizer that made it (``kmeans``, ``uniform``, ``binary``, ...), for reports.
        scale: affine form: float32 scale per slice (one per channel, or per group in the order of
            :func:`expand_slices`).
        zero_point: affine form: int64 zero point per slice (same shape as ``scale``).
        group_size: affine form: values per group along ``axis`` (0 = per channel, or per tensor without axis).
        qmin: affine form: the integer code of index 0.
    """

    indices: torch.Tensor
    codebook: torch.Tensor | None
    bits: int
    axis: int | None = None
    method: str = "kmeans"
    scale: torch.Tensor | None = None
    zero_point: torch.Tensor | None = None
    group_size: int = 0
    qmin: int = 0

    def __post_init__(self) -> None:
        if self.scale is not None:
            self._check_affine()
            return
        if self.codebook is None:
            raise ValueError("Codes need a codebook (table form) or a scale and zero point (affine form)")
        if self.codebook.dim() not in (1, 2):
            raise ValueError(f"codebook must be 1-D or 2-D, got shape {tuple(self.codebook.shape)}")
        if self.codebook.dim() == 2 and self.axis is None:
            raise ValueError("a per-channel (2-D) codebook needs the channel axis")

    def _check_affine(self) -> None:
        if self.codebook is not None or self.zero_point is None:
            raise ValueError("affine Codes take a scale and a zero point and no codebook")
        if self.scale.shape != self.zero_point.shape:
            raise ValueError(f"scale {tuple(self.scale.shape)} and zero point {tuple(self.zero_point.shape)} differ")
        want = slice_count(tuple(self.indices.shape), self.axis, self.group_size)
        if self.scale.numel() != want:
            raise ValueError(f"{self.scale.numel()} scales for {want} slices of shape {tuple(self.indices.shape)}")

    @property
    def affine(self) -> bool:
        """Whether the codes are integer codes with a scale and zero point per slice."""
        return self.scale is not None

    @property
    def levels(self) -> int:
        """Index alphabet size: codebook entries, or ``2**bits`` in affine form."""
        return 1 << self.bits if self.affine else int(self.codebook.shape[-1])

    def decode(self) -> torch.Tensor:
        """The float tensor, zeros at pruned positions."""
        if self.affine:
            return decode_affine(self.indices, self.scale, self.zero_point, self.qmin, self.axis, self.group_size)
        return decode_indices(self.indices, self.codebook, self.axis)


def slice_count(shape: tuple[int, ...], axis: int | None, group_size: int = 0) -> int:
    """Slices of a tensor: 1 (no axis), ``shape[axis]`` (channels) or ``numel / group_size`` (groups)."""
    if axis is None:
        return 1
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis} out of range for shape {shape}")
    if group_size:
        if shape[axis] % group_size:
            raise ValueError(f"group_size {group_size} does not divide axis {axis} of shape {shape}")
        return math.prod(shape) // group_size
    return shape[axis]


def expand_slices(per_slice: torch.Tensor, shape: tuple[int, ...] | torch.Size, axis: int | None,
                  group_size: int = 0) -> torch.Tensor:
    """Broadcast per-slice values (scales, zero points) to ``shape``: one value, one per channel along ``axis``,
    or one per ``group_size`` consecutive values along ``axis`` (groups ordered as ``movedim(axis, -1)``)."""
    shape = tuple(shape)
    if axis is None:
        return per_slice.reshape(()).expand(shape)
    axis %= len(shape)
    if not group_size:
        view = [1] * len(shape)
        view[axis] = -1
        return per_slice.reshape(view).expand(shape)
    moved = [d for i, d in enumerate(shape) if i != axis] + [shape[axis]]
    groups = per_slice.reshape(*moved[:-1], moved[-1] // group_size, 1)
    return groups.expand(*moved[:-1], moved[-1] // group_size, group_size).reshape(moved).movedim(-1, axis)


def decode_affine(indices: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int,
                  axis: int | None, group_size: int = 0) -> torch.Tensor:
    """``((indices + qmin) - z).float() * s`` per slice, +0.0 at pruned (-1) positions; the single affine decode.

    The integer part is exact in any integer width, so the float32 result equals
    :func:`netpress.quantize.uniform.dequantize` of the same codes bit for bit. Slices broadcast without
    materialising per-element scales; per tensor and per channel the rows are decoded ``DECODE_CHUNK`` values at
    a time into the output, so the temporaries stay chunk-sized.
    """
    shape = tuple(indices.shape)
    offset = qmin - zero_point.to(torch.int64)  # per slice: value = float(index + offset) * scale
    if axis is None:
        view, s, off = indices, scale.float().reshape(()), offset.reshape(())
    elif not group_size:
        bshape = [1] * len(shape)
        bshape[axis % len(shape)] = -1
        view, s, off = indices, scale.float().reshape(bshape), offset.reshape(bshape)
    else:
        moved = indices.movedim(axis, -1)
        view = moved.reshape(*moved.shape[:-1], moved.shape[-1] // group_size, group_size)
        s, off = scale.float().reshape(*view.shape[:-1], 1), offset.reshape(*view.shape[:-1], 1)
    wide = torch.int64 if offset.numel() and int(offset.abs().max()) >= 1 << 30 else torch.int32
    if axis is None or not group_size:
        return _affine_rows(view, s, off.to(wide), wide)
    out = _affine_block(view, s, off.to(wide), wide)
    return out.reshape(moved.shape).movedim(-1, axis).contiguous()


def _affine_block(view: torch.Tensor, s: torch.Tensor, off: torch.Tensor, wide: torch.dtype) -> torch.Tensor:
    # a copy first: the offset must never be added into int32 indices in place
    return view.to(wide, copy=True).add_(off).float().mul_(s).masked_fill_(view < 0, 0.0)


def _affine_rows(view: torch.Tensor, s: torch.Tensor, off: torch.Tensor, wide: torch.dtype) -> torch.Tensor:
    """:func:`_affine_block` in blocks of rows (dim 0) written into one output; per-row scales are sliced."""
    if view.dim() == 0 or view.numel() <= DECODE_CHUNK:
        return _affine_block(view, s, off, wide).contiguous()
    out = torch.empty(view.shape, dtype=torch.float32, device=view.device)
    step = max(1, DECODE_CHUNK // max(1, view[0].numel()))
    for r in range(0, view.shape[0], step):
        out[r:r + step] = _affine_block(view[r:r + step], _rows(s, r, step), _rows(off, r, step), wide)
    return out


def _rows(t: torch.Tensor, start: int, step: int) -> torch.Tensor:
    """Rows ``start:start + step`` of a per-row tensor; a tensor broadcast over the rows as it is."""
    return t[start:start + step] if t.dim() and t.shape[0] > 1 else t


def decode_indices(indices: torch.Tensor, codebook: torch.Tensor, axis: int | None = None) -> torch.Tensor:
    """Gather ``codebook`` at ``indices`` (per channel along ``axis`` when the codebook is 2-D); -1 -> 0.

    This is the single place a codebook lookup happens, so quantized models and decoded files agree bit for bit.
    """
    if codebook.dim() == 1:  # index -1 reads the appended +0.0: no clamp or mask temporaries
        ext = torch.cat([codebook, codebook.new_zeros(1)])
        if indices.dtype == torch.int64:
            return ext[indices]
        return _NarrowGather.apply(ext, indices)  # narrower indices (indexing would widen them all to int64)
    pruned = indices < 0
    safe = indices.clamp_min(0).long()
    moved = safe.movedim(axis, 0)
    flat = moved.reshape(moved.shape[0], -1)
    out = torch.gather(codebook, 1, flat).reshape(moved.shape).movedim(0, axis)
    return out.masked_fill(pruned, 0.0)


class _NarrowGather(torch.autograd.Function):
    """``ext[indices]`` for narrow (int8/16/32) indices, widened ``DECODE_CHUNK`` at a time (no full-size index
    copy); the backward adds the gradient into ``ext`` chunk by chunk in index order, as ``ext[indices]`` does."""

    @staticmethod
    def forward(ctx, ext: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(indices)
        ctx.size = ext.numel()
        out = torch.empty(indices.shape, dtype=ext.dtype, device=ext.device)
        dst = out.view(-1)
        for start, part in _wide_chunks(indices, ext.numel()):
            torch.index_select(ext, 0, part, out=dst[start:start + part.numel()])
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (indices,) = ctx.saved_tensors
        flat = grad.reshape(-1)
        out = grad.new_zeros(ctx.size)
        for start, part in _wide_chunks(indices, ctx.size):
            out.index_add_(0, part, flat[start:start + part.numel()])
        return out, None


def _wide_chunks(indices: torch.Tensor, size: int):
    """``(start, int32 chunk)`` of the flat indices; negative ones count from the end, as in ``ext[i]``."""
    flat = indices.reshape(-1)
    for start in range(0, flat.numel(), DECODE_CHUNK):
        part = flat[start:start + DECODE_CHUNK].int()
        yield start, torch.where(part < 0, part + size, part)


def index_dtype(bits: int) -> torch.dtype:
    """The smallest signed integer type holding indices ``-1 .. 2**bits - 1``."""
    return torch.int8 if bits <= 7 else torch.int16 if bits <= 15 else torch.int32
