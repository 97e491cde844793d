"""GPTQ: error-compensating rounding of a layer's weights, from the Hessian of its output error.

For a layer ``y = W x`` with calibration inputs ``X`` (rows), ``H = 2 X^T X / n``. Columns of ``W`` are rounded
one at a time; the rounding error of column ``j`` is spread over the not-yet-rounded columns so as to keep
``||X W^T - X Q^T||`` small (Optimal Brain Quantization, Frantar et al. 2022, in GPTQ's form: a fixed column
order, the upper Cholesky factor ``U`` of the damped ``H^-1``, and lazy updates of columns outside the current
block of ``blocksize`` columns). The same sweep with a pruning rule instead of rounding is SparseGPT
(:mod:`netpress.prune.sparsegpt`).

Rounding targets:
- uniform per channel / per group: values on the grid of :func:`netpress.quantize.uniform.uniform_codes`
  (per-row clip ratio chosen by a grid search on the layer output error, ``tr(E H E^T)``);
- a k-means codebook (netpress's 1-D k-means of the weights, then nearest-centroid rounding with error feedback);
- an entropy-constrained (ECSQ) codebook: each column goes to the level minimising squared error plus ``lam`` x
  its code length (:func:`netpress.quantize.ecsq.ecsq_assign`) on the live, error-compensated weights; the levels'
  probabilities then follow the swept assignment and the centroids are refitted for the least output error, and the
  sweep runs again from the refitted codebook (``ECSQ_PASSES`` sweeps in all).

Weights that are exactly zero (pruned) stay zero; their error is compensated like any other.

Example:
    >>> codes = gptq_codes(layer.weight, hessian, GPTQHparams(bits=4))
    >>> attach_codes(layer, "weight", codes)
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.obs import Rounder, _one_thread, dead_inputs, inverse_cholesky, obs_sweep  # noqa: F401 (public here too)
from netpress.quantize.base import WeightQuantizer, check_finite, quantizer_of, remove_quantizer
from netpress.quantize.codes import PRUNED, Codes
from netpress.quantize.uniform import UniformSpec, fake_quantize, qparams, uniform_codes

METHODS = ("uniform", "kmeans", "ecsq")
ECSQ_PASSES = 2  # sweep + refit rounds of the ecsq method (a second pass re-rounds against the refitted levels)


@dataclasses.dataclass(frozen=True)
class GPTQHparams(Hparams):
    """GPTQ options.

    Attributes:
        bits: bits per weight (uniform levels or k-means codebook size ``2**bits``; ``ecsq``: at most
            ``2**bits`` levels).
        method: ``uniform`` (integer grid with scale and zero point), ``kmeans`` (one codebook per tensor) or
            ``ecsq`` (one entropy-constrained codebook per tensor, for an entropy-coded file).
        granularity: uniform grid per ``channel`` (output row) or per ``group`` of ``group_size`` inputs.
        group_size: inputs per group (``group``; Linear weights only).
        symmetric: symmetric uniform range (zero point fixed) instead of the tight affine range.
        blocksize: columns per lazy-update block (the result does not depend on it, up to float rounding).
        percdamp: damping added to ``H``'s diagonal, as a fraction of its mean diagonal.
        act_order: round columns in order of decreasing ``H`` diagonal (groups then use ranges fixed up front).
        clip_grid: clip ratios tried per row (1 = min-max only), from 1 down to ``clip_min``.
        clip_min: the smallest clip ratio tried.
        kmeans_iterations: Lloyd iterations of the codebook fit (``kmeans``; ``ecsq``: alternations).
        kmeans_refit: after the GPTQ assignment, re-solve the centroids for the least output error
            ``tr(E H E^T)`` given the assignment (a k x k linear system; ``kmeans`` / ``ecsq`` with data).
        lam: ``ecsq``'s rate weight, relative to the variance of the tensor's nonzero weights (``lam * var(w)``
            squared weight units per bit, as :func:`netpress.quantize.ecsq.ecsq_weights` with ``relative``);
            0 = k-means levels.
        step: ``0``: a fixed-rate grid of ``2**bits`` levels fitted to each row's range (clip search). ``> 0``: an
            entropy-coded grid (``uniform`` per channel): one step of ``step`` x the tensor's standard deviation for
            every row, ``bits`` only capping the levels (a row whose range needs more gets a wider step). The
            file's entropy coder then spends about ``h(w) - log2(step * std)`` bits per weight: a finer grid at
            fewer average bits than a fixed-rate one (the step sets the rate, not ``bits``).
    """

    bits: int = 4
    method: str = "uniform"
    granularity: str = "channel"
    group_size: int = 128
    symmetric: bool = False
    blocksize: int = 128
    percdamp: float = 0.01
    act_order: bool = False
    clip_grid: int = 10
    clip_min: float = 0.5
    kmeans_iterations: int = 100
    kmeans_refit: bool = True
    step: float = 0.0
    lam: float = 0.0

    def validate(self) -> None:
        require(isinstance(self.bits, int) and not isinstance(self.bits, bool) and 1 <= self.bits <= 16,
                f"bits must be an integer from 1 to 16, got {self.bits!r}")
        require(self.method in METHODS, f"unknown GPTQ method {self.method!r}; known: {', '.join(METHODS)}")
        require(self.granularity in ("channel", "group"),
                f"GPTQ granularity must be 'channel' or 'group', got {self.granularity!r}")
        require(self.group_size >= 1, f"group_size must be >= 1, got {self.group_size}")
        require(self.blocksize >= 1, f"blocksize must be >= 1, got {self.blocksize}")
        require(0 <= self.percdamp < 10, f"percdamp must be in [0, 10), got {self.percdamp}")
        require(self.clip_grid >= 1, f"clip_grid must be >= 1, got {self.clip_grid}")
        require(0 < self.clip_min <= 1, f"clip_min must be in (0, 1], got {self.clip_min}")
        require(isinstance(self.step, (int, float)) and self.step >= 0, f"step must be >= 0, got {self.step!r}")
        require(not self.step or (self.method == "uniform" and self.granularity == "channel"),
                "step (an entropy-coded grid) needs method='uniform' and granularity='channel'")
        require(isinstance(self.lam, (int, float)) and math.isfinite(self.lam) and self.lam >= 0,
                f"lam must be a finite number >= 0, got {self.lam!r}")
        require(not self.lam or self.method == "ecsq", "lam (a rate weight) needs method='ecsq'")

    def spec(self) -> UniformSpec:
        """The uniform grid of a ``[out, in]`` weight matrix (per row, or per group along the inputs)."""
        if self.granularity == "group":
            return UniformSpec(bits=self.bits, symmetric=self.symmetric, granularity="group", axis=1,
                               group_size=self.group_size)
        return UniformSpec(bits=self.bits, symmetric=self.symmetric, granularity="channel", axis=0)


# ------------------------------------------------------------------------------------------------- rounders
def search_range(w: torch.Tensor, hessian: torch.Tensor | None, spec: UniformSpec, grid: int = 20,
                 clip_min: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(scale, zero_point)`` of ``w`` ``[rows, m]`` minimising the output error ``e H e^T`` of each row
    (plain ``||e||^2`` without ``H``) over clip ratios ``1 .. clip_min`` of the row's min-max range.

    Example:
        >>> scale, zp = search_range(w, h, UniformSpec(bits=4, granularity="channel"))
    """
    lo, hi = w.amin(1).float(), w.amax(1).float()
    best = torch.full((w.shape[0],), float("inf"), dtype=w.dtype, device=w.device)
    scale = zp = None
    for ratio in torch.linspace(1.0, clip_min, grid).tolist() if grid > 1 else [1.0]:
        s, z = qparams(lo * ratio, hi * ratio, spec)
        e = w - fake_quantize(w, s[:, None], z[:, None], spec.qmin, spec.qmax).to(w.dtype)
        err = ((e @ hessian) * e).sum(1) if hessian is not None else (e * e).sum(1)
        better = err < best
        best = torch.where(better, err, best)
        scale = s if scale is None else torch.where(better, s, scale)
        zp = z if zp is None else torch.where(better, z, zp)
    return scale, zp


def step_range(w: torch.Tensor, spec: UniformSpec, step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(scale, zero_point)`` of an entropy-coded grid for ``w`` ``[rows, m]``.

    Every row gets the same step, ``step`` x the standard deviation of ``w`` (for a summed squared error at a
    given entropy the best uniform quantizers share one step), rounded to float16; a row whose range needs more
    than ``spec``'s levels gets the min-max step instead. The zero point is the middle code where the row's range
    allows, so the codes of every row share one distribution for the entropy coder.

    Example:
        >>> scale, zp = step_range(w, UniformSpec(bits=8, granularity="channel"), step=0.4)
    """
    wf = w.float()
    lo, hi = wf.amin(1).clamp(max=0), wf.amax(1).clamp(min=0)
    std = float(wf.std()) if wf.numel() > 1 else 1.0
    base = float(torch.tensor(max(step * std, 2.0 ** -14)).half())
    scale = torch.maximum(torch.full_like(lo, base), _half_up((hi - lo) / float(spec.qmax - spec.qmin)))
    middle = torch.full_like(lo, (spec.qmin + spec.qmax + 1) // 2)
    low_zp = spec.qmin - torch.round(lo / scale)   # the row's minimum lands on a code >= qmin
    high_zp = spec.qmax - torch.round(hi / scale)  # and its maximum on one <= qmax
    zp = torch.minimum(torch.maximum(middle, low_zp), high_zp)
    return scale, zp.to(torch.int64)


def _half_up(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded up to the next float16 value (as float32)."""
    half = x.half()
    up = torch.nextafter(half, torch.full_like(half, float("inf")))
    return torch.where(half.float() < x, up, half).float()


class UniformRounder(Rounder):
    """Round to a uniform grid per row or per group; exact zeros of ``keep``'s complement stay zero.

    Per channel the ranges are searched once up front; per group they are searched on the live weights when the
    sweep reaches each group (fixed up front with ``act_order``, so groups stay contiguous in the original order).
    """

    def __init__(self, w: torch.Tensor, hessian: torch.Tensor | None, hp: GPTQHparams,
                 keep: torch.Tensor | None = None):
        self.hp, self.spec, self.hessian = hp, hp.spec(), hessian
        rows, cols = w.shape
        self.keep = torch.ones_like(w, dtype=torch.bool) if keep is None else keep.clone()
        self.group = hp.granularity == "group"
        width = hp.group_size if self.group else cols
        self.scale = torch.zeros(rows, cols // width, dtype=torch.float32, device=w.device)
        self.zp = torch.zeros(rows, cols // width, dtype=torch.int64, device=w.device)
        self.col_group = torch.arange(cols, device=w.device) // width
        self.dynamic = self.group and not hp.act_order
        if hp.step:
            self.scale[:, 0], self.zp[:, 0] = step_range(w, self.spec, hp.step)
        elif not self.dynamic:
            self._fit_all(w)

    def _fit_all(self, w: torch.Tensor) -> None:
        width = w.shape[1] // self.scale.shape[1]
        for g in range(self.scale.shape[1]):
            self._fit(g, w[:, g * width:(g + 1) * width], g * width)

    def _fit(self, g: int, block: torch.Tensor, start: int) -> None:
        end = start + block.shape[1]
        h = None if self.hessian is None else self.hessian[start:end, start:end].to(block.dtype)
        self.scale[:, g], self.zp[:, g] = search_range(block, h, self.spec, self.hp.clip_grid, self.hp.clip_min)

    def permute(self, perm: torch.Tensor) -> None:
        self.keep, self.col_group = self.keep[:, perm], self.col_group[perm]

    def column(self, j: int, w: torch.Tensor) -> torch.Tensor:
        g = int(self.col_group[j])
        if self.dynamic and j % self.hp.group_size == 0:
            self._fit(g, w[:, j:j + self.hp.group_size], j)
        q = fake_quantize(w[:, j], self.scale[:, g], self.zp[:, g], self.spec.qmin, self.spec.qmax)
        return q.to(w.dtype) * self.keep[:, j]

    def nearest(self, w: torch.Tensor, block_rows: int = 4096) -> torch.Tensor:
        """Round-to-nearest of all of ``w`` (no error feedback), in blocks of rows: equal to rounding it column
        by column (per group the ranges are fitted on ``w`` itself, as the sweep would without feedback)."""
        if self.dynamic:
            self._fit_all(w)
        out = torch.empty_like(w)
        for r in range(0, w.shape[0], block_rows):
            rows = slice(r, r + block_rows)
            scale, zp = self.scale[rows][:, self.col_group], self.zp[rows][:, self.col_group]
            out[rows] = fake_quantize(w[rows], scale, zp, self.spec.qmin, self.spec.qmax).to(w.dtype) * self.keep[rows]
        return out

    def codes(self, q: torch.Tensor, shape: torch.Size) -> Codes:
        """The :class:`Codes` of the swept result ``q`` (matrix view) for a weight of ``shape``."""
        scale, zp = (self.scale.reshape(-1), self.zp.reshape(-1)) if self.group else (self.scale[:, 0], self.zp[:, 0])
        return uniform_codes(q.float().reshape(shape), scale, zp, self.spec)


class CodebookRounder(Rounder):
    """Round each weight to the nearest value of a fixed 1-D codebook; zeros outside ``keep`` stay zero."""

    def __init__(self, codebook: torch.Tensor, keep: torch.Tensor):
        self.codebook, self.keep = codebook.reshape(-1), keep.clone()

    def permute(self, perm: torch.Tensor) -> None:
        self.keep = self.keep[:, perm]

    def column(self, j: int, w: torch.Tensor) -> torch.Tensor:
        book = self.codebook.to(w.dtype)
        q = book[nearest(w[:, j], book)]
        return q * self.keep[:, j]


class ECSQRounder(Rounder):
    """Send each weight to the level minimising ``(w - c_k)^2 + lam * (-log2 p_k)``; zeros outside ``keep``
    stay zero."""

    def __init__(self, codebook: torch.Tensor, probs: torch.Tensor, lam: float, keep: torch.Tensor):
        self.codebook, self.probs, self.lam, self.keep = codebook.double(), probs.double(), lam, keep.clone()

    def permute(self, perm: torch.Tensor) -> None:
        self.keep = self.keep[:, perm]

    def column(self, j: int, w: torch.Tensor) -> torch.Tensor:
        from netpress.quantize.ecsq import ecsq_assign

        labels = ecsq_assign(w[:, j].double().cpu(), self.codebook, self.probs, self.lam).to(w.device)
        return self.codebook.to(w.device, w.dtype)[labels] * self.keep[:, j]


def nearest(values: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook entry of each value (ties: the lower index)."""
    return (values.reshape(-1, 1) - codebook.reshape(1, -1)).abs().argmin(1).reshape(values.shape)


# ------------------------------------------------------------------------------------------- one weight tensor
def check_weight(name: str, w: torch.Tensor, hp: GPTQHparams) -> None:
    """Raise :class:`ConfigError` if ``hp`` cannot quantize ``w`` (before any change)."""
    check_finite(name, w)
    if hp.method == "uniform" and hp.granularity == "group":
        if w.dim() != 2:
            raise ConfigError(f"{name}: per-group GPTQ needs a 2-D (Linear) weight, got shape {tuple(w.shape)}; "
                              "use granularity='channel'")
        if w.shape[1] % hp.group_size:
            raise ConfigError(f"{name}: group_size {hp.group_size} does not divide {w.shape[1]} inputs")
    if hp.method == "kmeans" and int((w != 0).sum()) < 2 ** hp.bits:
        raise ConfigError(f"{name}: {2 ** hp.bits} centroids but only {int((w != 0).sum())} nonzero weights")
    if hp.method == "ecsq" and not bool((w != 0).any()):
        raise ConfigError(f"{name} has no nonzero weights to quantize; exclude it")


def gptq_codes(w: torch.Tensor, hessian: torch.Tensor | None, hp: GPTQHparams = GPTQHparams(),
               name: str = "weight") -> Codes:
    """GPTQ-quantize one weight (Linear ``[out, in]`` or Conv ``[out, C, k...]``, im2col order).

    Args:
        w: the weight (exact zeros are kept as pruned).
        hessian: ``2 X^T X / n`` of the layer's inputs ``[in, in]``; None: no data (round to nearest,
            clip search on the weight error).
        hp: options.
        name: the tensor's name, for messages.

    Returns:
        :class:`Codes` whose ``decode()`` is the quantized weight (uniform grid or 1-D k-means codebook).

    Raises:
        ConfigError: NaN/Inf, a group size that does not fit, fewer nonzero weights than centroids.

    Example:
        >>> gptq_codes(fc.weight, h, GPTQHparams(bits=3)).decode().unique().numel() <= 8 * fc.out_features
        True
    """
    check_weight(name, w, hp)
    if hp.method == "ecsq":
        return ecsq_gptq_codes(w.detach(), hessian, hp)
    mat = w.detach().reshape(w.shape[0], -1)
    keep = mat != 0
    dtype = hessian.dtype if hessian is not None else torch.float32
    if hp.method == "kmeans":
        book = _kmeans_codebook(mat, hp)
        rounder: Rounder = CodebookRounder(book.to(dtype), keep)
    else:
        rounder = UniformRounder(mat.to(dtype), hessian, hp, keep)
    if hessian is None:
        q = rounder.nearest(mat.to(dtype))
    else:
        q = obs_sweep(mat, hessian, rounder, blocksize=hp.blocksize, percdamp=hp.percdamp, act_order=hp.act_order)
    if hp.method == "kmeans":
        idx = nearest(q.float(), book).masked_fill(~keep, PRUNED)
        if hessian is not None and hp.kmeans_refit:
            book = refit_codebook(mat.to(dtype), idx, book.to(dtype), hessian).float()
        return Codes(idx.reshape(w.shape), book.float().clone(), hp.bits, None, "kmeans-gptq")
    return rounder.codes(q, w.shape)


def ecsq_gptq_codes(w: torch.Tensor, hessian: torch.Tensor | None, hp: GPTQHparams) -> Codes:
    """ECSQ levels of a weight (``[out, in]`` or conv in im2col order), rounded with error feedback (see the module
    docstring).

    Without ``hessian`` this is plain ECSQ of the nonzero weights. Levels no weight uses are dropped, the rest keep
    their order; zeros get index ``PRUNED``.

    Returns:
        :class:`Codes` of ``w``'s shape, ``method='ecsq-gptq'`` (``'ecsq'`` without data).

    Example:
        >>> codes = ecsq_gptq_codes(fc.weight, hessian, GPTQHparams(bits=5, method="ecsq", lam=0.02))
    """
    from netpress.quantize.ecsq import _nonzero_variance, compact_levels, ecsq

    mat = w.reshape(w.shape[0], -1)
    keep = mat != 0
    lam = hp.lam * _nonzero_variance(mat)
    fit = ecsq(mat[keep].float().cpu(), hp.bits, lam, hp.kmeans_iterations)
    kept_labels, used = compact_levels(fit.labels, len(fit.centroids))
    book, probs = fit.centroids[used].double(), fit.probs[used].double()
    labels = torch.full(mat.shape, PRUNED, dtype=torch.int64)
    labels[keep.cpu()] = kept_labels
    for _ in range(ECSQ_PASSES if hessian is not None else 0):
        swept = obs_sweep(mat, hessian, ECSQRounder(book, probs, lam, keep), blocksize=hp.blocksize,
                          percdamp=hp.percdamp, act_order=hp.act_order)
        labels = nearest(swept.double().cpu(), book).masked_fill(~keep.cpu(), PRUNED)
        counts = torch.bincount(labels[labels >= 0], minlength=len(book)).double()
        probs = counts / counts.sum()
        if hp.kmeans_refit:
            book = refit_codebook(mat.double().cpu(), labels, book, hessian.double().cpu())
    labels, used = compact_levels(labels, len(book))
    method = "ecsq-gptq" if hessian is not None else "ecsq"
    return Codes(labels.reshape(w.shape).to(w.device), book[used].float().to(w.device), hp.bits, None, method)


def refit_codebook(w: torch.Tensor, labels: torch.Tensor, codebook: torch.Tensor,
                   hessian: torch.Tensor) -> torch.Tensor:
    """Centroids minimising ``sum_r (w_r - c[l_r]) H (w_r - c[l_r])^T`` for fixed labels (``-1``: pruned, 0).

    The normal equations ``A c = b`` with ``A = sum_r O_r^T H O_r`` and ``b = sum_r O_r^T H w_r`` (``O_r``: the
    one-hot assignment of row ``r``); centroids no weight uses keep their value.

    Args:
        w: ``[rows, cols]`` float weights (the values before rounding).
        labels: ``[rows, cols]`` int64 codebook indices.
        codebook: ``[k]`` current centroids.
        hessian: ``[cols, cols]``.

    Returns:
        ``[k]`` centroids, ``hessian``'s dtype.
    """
    k, dtype = codebook.numel(), hessian.dtype
    a = torch.zeros(k, k, dtype=dtype, device=w.device)
    wh = w.to(dtype) @ hessian
    b = torch.zeros(k, dtype=dtype, device=w.device)
    for r in range(w.shape[0]):
        alive = labels[r] >= 0
        lab = labels[r][alive]
        ho = torch.zeros(hessian.shape[0], k, dtype=dtype, device=w.device).index_add_(1, lab, hessian[:, alive])
        a.index_add_(0, lab, ho[alive])
        b.index_add_(0, lab, wh[r][alive])
    used = a.diagonal() > 0
    new = codebook.to(dtype).clone()
    if bool(used.any()):
        sub = a[used][:, used]
        ridge = 1e-10 * sub.diagonal().mean() * torch.eye(int(used.sum()), dtype=dtype, device=w.device)
        new[used] = torch.linalg.solve(sub + ridge, b[used])
    return new


def _kmeans_codebook(mat: torch.Tensor, hp: GPTQHparams) -> torch.Tensor:
    from netpress.quantize.sharing import kmeans_codebook

    return kmeans_codebook(mat.float().cpu(), hp.bits, iterations=hp.kmeans_iterations).codebook.detach().to(mat.device)


def output_error(w: torch.Tensor, q: torch.Tensor, hessian: torch.Tensor) -> float:
    """``tr((W - Q) H (W - Q)^T)``: the layer's summed squared output error per input row, times 2."""
    e = (w.reshape(w.shape[0], -1) - q.reshape(q.shape[0], -1)).detach().to(hessian.dtype)
    return float(((e @ hessian) * e).sum())


# ------------------------------------------------------------------------------------------- the module level
def attach_codes(module: nn.Module, attr: str, codes: Codes) -> WeightQuantizer:
    """Freeze ``module.attr`` to ``codes``: a :class:`WeightQuantizer` parametrization returning ``codes.decode()``.

    An existing quantizer on the tensor is replaced; a pruning mask stays under it.

    Example:
        >>> attach_codes(fc, "weight", gptq_codes(fc.weight, h))
    """
    from netpress.quantize.codebook import attach
    from netpress.quantize.uniform import frozen_quantizer

    if quantizer_of(module, attr) is not None:
        remove_quantizer(module, attr)
    quantizer = frozen_quantizer(codes)
    attach(module, attr, quantizer)
    return quantizer


@torch.no_grad()
def gptq_module(module: nn.Module, hessian: torch.Tensor | None, hp: GPTQHparams = GPTQHparams(),
                attr: str = "weight", name: str = "weight") -> dict:
    """GPTQ-quantize ``module.attr`` in place from its input Hessian (None: round to nearest).

    Args:
        module: a Linear / Conv (or, without ``hessian``, any module with the tensor).
        hessian: ``[in, in]`` from :mod:`netpress.calibrate`.
        hp: options.
        attr: the tensor's attribute.
        name: the tensor's name, for messages.

    Returns:
        A report: ``bits``, ``method`` and, with a Hessian, ``error`` / ``rtn_error`` (``tr(E H E^T)`` of GPTQ and of
        round-to-nearest with the same grid search).

    Example:
        >>> gptq_module(net.fc1, stats.hessian, GPTQHparams(bits=4))["error"]
    """
    w = getattr(module, attr).detach()
    codes = gptq_codes(w, hessian, hp, name)
    report = {"bits": hp.bits, "method": hp.method if hessian is not None else f"{hp.method}-rtn"}
    if hessian is not None:
        report["error"] = output_error(w, codes.decode(), hessian)
        report["rtn_error"] = output_error(w, gptq_codes(w, None, _rtn_like(hp, hessian)).decode(), hessian)
    attach_codes(module, attr, codes)
    return report


def _rtn_like(hp: GPTQHparams, hessian: torch.Tensor) -> GPTQHparams:
    return hp.replace(clip_grid=1) if hp.method == "uniform" else hp
