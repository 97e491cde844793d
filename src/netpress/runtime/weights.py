"""Weights kept compressed in memory: int8 rows with a per-row scale, and low-bit (4/6/8-bit) indices.

A quantized weight is viewed as rows (output channels for Linear/Conv, vocabulary rows for Embedding). Its
representation is inferred from the dense effective values, so it is exact by construction:

- ``LowBit``: per-row affine levels ``w = q * scale + offset`` (uniform grids; exact to float32 rounding, 1e-6
  relative), or indices into a shared codebook (k-means, <= 256 entries; bit-exact). 4-bit levels are packed two
  per byte, 6-bit levels (17-64 per row) four per three bytes.
- ``Int8``: symmetric int8 ``w = q * scale`` (zero point 0, what fbgemm's int8 kernels take). Exact when the
  row's values lie on an integer grid through 0 with levels in [-128, 127]; otherwise re-quantized, which is
  allowed only when the worst row error ``max|w - q*s| / max|w|`` is at most the caller's tolerance.
"""
from __future__ import annotations

import dataclasses

import torch

EXACT_RTOL = 1e-6  # float32 rounding of q * scale + offset


def rows_view(w: torch.Tensor) -> torch.Tensor:
    """The weight as ``[rows, cols]`` (rows = dim 0)."""
    return w.detach().reshape(w.shape[0], -1).float()


def distinct_per_row(w2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row sorted distinct values.

    Returns:
        ``(ranks, book, counts)``: ``ranks[r, c]`` indexes ``book[r]`` (ascending, padded with the row's last
        value) so that ``book.gather(1, ranks) == w2``; ``counts[r]`` distinct values in row ``r``.
    """
    s, order = w2.sort(dim=1)
    new = torch.ones_like(s, dtype=torch.int64)
    new[:, 1:] = (s[:, 1:] != s[:, :-1]).long()
    rank_sorted = new.cumsum(1) - 1
    ranks = torch.empty_like(rank_sorted).scatter_(1, order, rank_sorted)
    counts = rank_sorted[:, -1] + 1
    k = int(counts.max()) if w2.numel() else 1
    book = s[:, -1:].repeat(1, k).scatter(1, rank_sorted, s)
    return ranks, book, counts


def pack4(q: torch.Tensor) -> torch.Tensor:
    """Pack ``[rows, cols]`` levels in [0, 15] two per byte (low nibble first): ``[rows, ceil(cols / 2)]`` uint8."""
    q = q.to(torch.uint8)
    if q.shape[1] % 2:
        q = torch.cat([q, torch.zeros_like(q[:, :1])], 1)
    return q[:, 0::2] | (q[:, 1::2] << 4)


def unpack4(p: torch.Tensor, cols: int) -> torch.Tensor:
    """Inverse of :func:`pack4` (int64 levels, ``[..., cols]``)."""
    out = torch.stack([p & 15, p >> 4], -1).reshape(*p.shape[:-1], -1)
    return out[..., :cols].long()


def pack6(q: torch.Tensor) -> torch.Tensor:
    """Pack ``[rows, cols]`` levels in [0, 63] four per three bytes: ``[rows, 3 * n]`` uint8, ``n = ceil(cols / 4)``.

    The 24-bit word ``j`` holds columns ``j, n + j, 2n + j, 3n + j`` (6 bits each); its three bytes are stored as
    three planes of ``n`` bytes, so unpacking is byte arithmetic on contiguous slices.
    """
    q = q.to(torch.int32)
    if q.shape[1] % 4:
        q = torch.cat([q, q.new_zeros(q.shape[0], 4 - q.shape[1] % 4)], 1)
    q0, q1, q2, q3 = q.chunk(4, 1)
    word = q0 | (q1 << 6) | (q2 << 12) | (q3 << 18)
    return torch.cat([word & 255, (word >> 8) & 255, word >> 16], 1).to(torch.uint8)


def unpack6(p: torch.Tensor, cols: int) -> torch.Tensor:
    """Inverse of :func:`pack6` (uint8 levels, ``[..., cols]``)."""
    b0, b1, b2 = p.chunk(3, -1)
    out = torch.cat([b0 & 63, (b0 >> 6) | ((b1 & 15) << 2), (b1 >> 4) | ((b2 & 3) << 4), b2 >> 2], -1)
    return out[..., :cols]


@dataclasses.dataclass
class LowBit:
    """Row-wise low-bit weight. Exactly one of (``scale``, ``offset``) or ``codebook`` is set.

    Attributes:
        packed: uint8 ``[rows, cols]`` (8-bit), ``[rows, 3 * ceil(cols/4)]`` (6-bit, four per three bytes) or
            ``[rows, ceil(cols/2)]`` (4-bit, two per byte).
        bits: 4, 6 or 8.
        cols: values per row.
        shape: the original weight shape.
        scale, offset: float32 ``[rows]``: ``w = q * scale + offset``.
        codebook: float32 ``[k]`` shared by all rows: ``w = codebook[q]``.
    """

    packed: torch.Tensor
    bits: int
    cols: int
    shape: tuple[int, ...]
    scale: torch.Tensor | None = None
    offset: torch.Tensor | None = None
    codebook: torch.Tensor | None = None

    def levels(self, rows: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """Integer levels of the selected rows (int64 ``[n, cols]``)."""
        return self._levels(rows).long()

    def dequantize(self, rows: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """Float32 values of the selected rows (only those rows are expanded)."""
        q = self._levels(rows)
        if self.codebook is not None:
            return self.codebook.index_select(0, q.reshape(-1).int()).reshape(q.shape)  # 2x faster than indexing
        return torch.addcmul(_take(self.offset, rows)[:, None], q.float(), _take(self.scale, rows)[:, None])

    def _levels(self, rows) -> torch.Tensor:
        p = _take(self.packed, rows)
        if self.bits == 4:
            return unpack4(p, self.cols)
        return unpack6(p, self.cols) if self.bits == 6 else p  # uint8 (8-bit: as stored), converted by the caller

    def nbytes(self) -> int:
        extra = [t for t in (self.scale, self.offset, self.codebook) if t is not None]
        return self.packed.numel() + sum(4 * t.numel() for t in extra)


def _take(t: torch.Tensor, rows: torch.Tensor | slice) -> torch.Tensor:
    """Rows of ``t``: a slice is a view, an index tensor a gather (``index_select``: cheaper than indexing)."""
    return t[rows] if isinstance(rows, slice) else t.index_select(0, rows)


def lowbit(w: torch.Tensor, max_bits: int = 8) -> LowBit | None:
    """The exact low-bit form of ``w`` (None when a row has more than ``2**max_bits`` distinct values).

    Per-row affine levels (``w`` on a grid per row) or indices into one shared codebook (the whole tensor has
    <= ``2**max_bits`` distinct values), whichever takes fewer bytes.

    Example:
        >>> lb = lowbit(kmeans_shared_weight)    # 5-bit k-means -> 6-bit indices + 32-entry codebook
        >>> torch.equal(lb.dequantize().reshape(lb.shape), kmeans_shared_weight)
        True
    """
    w2 = rows_view(w)
    ranks, book, counts = distinct_per_row(w2)
    if int(counts.max()) > (1 << max_bits):
        return None
    forms = []
    affine = _affine(book, counts, max_bits)
    if affine is not None:
        q, scale, offset = affine
        levels, bits = q.gather(1, ranks), _bits(int(q.max()) + 1)
        forms.append(LowBit(_pack(levels, bits), bits, w2.shape[1], tuple(w.shape), scale=scale, offset=offset))
    values, inverse = torch.unique(w2, return_inverse=True)
    if values.numel() <= (1 << max_bits):
        bits = _bits(values.numel())
        forms.append(LowBit(_pack(inverse, bits), bits, w2.shape[1], tuple(w.shape), codebook=values.float().clone()))
    return min(forms, key=LowBit.nbytes) if forms else None


def _bits(k: int) -> int:
    return 4 if k <= 16 else 6 if k <= 64 else 8


def _pack(levels: torch.Tensor, bits: int) -> torch.Tensor:
    return pack4(levels) if bits == 4 else pack6(levels) if bits == 6 else levels.to(torch.uint8)


def _grid_step(book: torch.Tensor, counts: torch.Tensor, origin: torch.Tensor,
               partial: bool = False) -> torch.Tensor | None:
    """Per-row step ``s`` such that every valid ``(book - origin) / s`` is an integer (the smallest gap divided by
    the smallest ``d <= 16`` that works), or None when some row has no such step (``partial``: NaN in those rows)."""
    k = book.shape[1]
    valid = torch.arange(k)[None, :] < counts[:, None]
    gaps = (book[:, 1:] - book[:, :-1]).masked_fill(~valid[:, 1:] | (book[:, 1:] == book[:, :-1]), float("inf"))
    smallest = gaps.min(1).values if k > 1 else torch.full((book.shape[0],), float("inf"))
    smallest = torch.where(torch.isfinite(smallest), smallest, torch.ones_like(smallest))
    step = torch.full_like(smallest, float("nan"))
    for d in range(1, 17):
        s = smallest / d
        r = (book - origin[:, None]) / s[:, None]
        off = (r - torch.round(r)).abs().masked_fill(~valid, 0).amax(1)
        step = torch.where(torch.isnan(step) & (off <= 0.02), s, step)  # float error of the gap
    if bool(torch.isnan(step).any()) and not partial:
        return None
    q = torch.round((book - origin[:, None]) / step[:, None]).masked_fill(~valid, 0)
    refined = (q * (book - origin[:, None])).sum(1) / (q * q).sum(1).clamp_min(1e-30)  # least squares
    step = torch.where((q * q).sum(1) > 0, refined, step)
    err = ((q * step[:, None] + origin[:, None]) - book).abs().masked_fill(~valid, 0).amax(1)
    off = ~(err <= EXACT_RTOL * book.abs().amax(1).clamp_min(1e-30))  # NaN rows count as off
    if partial:
        return step.masked_fill(off, float("nan"))
    return None if bool(off.any()) else step


def _affine(book: torch.Tensor, counts: torch.Tensor, max_bits: int):
    """Per-row ``(levels_of_book, scale, offset)`` when every row's values are on an integer grid, else None."""
    offset = book[:, 0]
    step = _grid_step(book, counts, offset)
    if step is None:
        return None
    q = torch.round((book - offset[:, None]) / step[:, None])
    if int(q.max()) >= (1 << max_bits):
        return None
    return q.long(), step.float().clone(), offset.float().clone()  # own storage: resident bytes stay honest


@dataclasses.dataclass
class Int8:
    """Symmetric per-row int8: ``w = q * scale``; ``error`` is the worst row's ``max|w - q*s| / max|w|``."""

    q: torch.Tensor
    scale: torch.Tensor
    error: float
    exact: bool


def int8_rows(w: torch.Tensor) -> Int8:
    """Per-row symmetric int8 of ``w``: rows on such a grid keep it exactly, the others are rounded (their worst
    error is ``Int8.error``; ``Int8.exact`` when every row was on a grid).

    Example:
        >>> i8 = int8_rows(gptq_weight)      # 8-bit codes, zero point 0, one step per row
        >>> i8.exact, torch.allclose(i8.q.float() * i8.scale[:, None], gptq_weight)
        (True, True)
    """
    w2 = rows_view(w)
    amax = w2.abs().amax(1)
    exact = _exact_grid(w2)
    on_grid = ~torch.isnan(exact)
    scale = torch.where(on_grid, exact, (amax / 127).clamp_min(1e-30))
    q = torch.round(w2 / scale[:, None]).clamp(-128, 127)
    err = ((q * scale[:, None] - w2).abs().amax(1) / amax.clamp_min(1e-30)).masked_fill(amax == 0, 0.0)
    err = err.masked_fill(on_grid, 0.0)  # float32 rounding of q * scale only
    return Int8(q.to(torch.int8), scale.float().clone(), float(err.max()) if err.numel() else 0.0,
                bool(on_grid.all()))


def _exact_grid(w2: torch.Tensor) -> torch.Tensor:
    """Per-row step of a grid through 0 with levels in [-128, 127] holding every value of the row; NaN in rows
    that have none."""
    _ranks, book, counts = distinct_per_row(w2)
    with_zero = torch.cat([book, torch.zeros(book.shape[0], 1)], 1).sort(1).values
    step = _grid_step(with_zero, counts + 1, torch.zeros(book.shape[0]), partial=True)
    q = (book / step[:, None]).round()
    too_wide = (counts > 255) | (q.amax(1) > 127) | (q.amin(1) < -128)
    return step.masked_fill(too_wide, float("nan"))
