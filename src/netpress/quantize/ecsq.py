"""Entropy-constrained scalar quantization (ECSQ; Chou, Lookabaugh & Gray 1989).

Each weight goes to the codeword minimising distortion plus ``lam`` times its ideal code length,
``argmin_k (w - c_k)^2 + lam * (-log2 p_k)``; centroids become the means of their weights and ``p_k`` the
fraction of weights they hold; the two steps alternate until the assignment stops changing. ``lam = 0`` is
plain k-means; a larger ``lam`` trades distortion for a lower index entropy (smaller entropy-coded files).
Exact zeros (pruned weights) get index -1 and stay zero; the tensor becomes a
:class:`~netpress.quantize.sharing.CodebookWeight` with ``method='ecsq'``.

Example:
    >>> net = ecsq_weights(net, bits=5, lam=0.01)
    >>> export_codes(net)["fc1.weight"].method
    'ecsq'
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.quantize.base import bits_per_tensor, check_finite, quantizer_of, remove_quantizer, selected_tensors
from netpress.quantize.codes import PRUNED
from netpress.quantize.sharing import CodebookWeight, _attach

_RTOL = 1e-7  # stop when the Lagrangian improves by less than this fraction
_TINY = 1e-12  # probability floor: an empty cell costs ~40 bits, so it is only chosen at tiny lam


@dataclasses.dataclass
class ECSQResult:
    """One tensor's ECSQ solution.

    Attributes:
        labels: int64 index of each input value.
        centroids: float32 ``[k]`` codebook.
        probs: float32 ``[k]`` fraction of values per codeword.
        iterations: alternations run.
    """

    labels: torch.Tensor
    centroids: torch.Tensor
    probs: torch.Tensor
    iterations: int


def ecsq_assign(w: torch.Tensor, centroids: torch.Tensor, probs: torch.Tensor, lam: float) -> torch.Tensor:
    """The Lagrangian assignment ``argmin_k (w - c_k)^2 + lam * (-log2 p_k)`` of each value of ``w``.

    Dropping the common ``w^2``, each codeword's cost is a line in ``w`` (slope ``-2 c_k``); the lower envelope
    of the k lines splits the real line into intervals, so the assignment is one ``searchsorted`` per value:
    O(k log k + n log k) time and O(n + k) memory.

    Args:
        w: values (any shape).
        centroids: ``[k]`` codewords.
        probs: ``[k]`` codeword probabilities (zeros are floored at 1e-12).
        lam: rate weight, >= 0 (squared weight units per bit).

    Returns:
        int64 labels, ``w``'s shape.

    Example:
        >>> ecsq_assign(torch.tensor([0.4]), torch.tensor([0.0, 1.0]), torch.tensor([0.9, 0.1]), lam=0.0)
        tensor([0])
    """
    c = centroids.detach().double().cpu().numpy()
    pen = lam * -np.log2(np.maximum(probs.detach().double().cpu().numpy(), _TINY))
    hull, breaks = _lower_envelope(-2.0 * c, c * c + pen)
    x = w.detach().double().cpu().reshape(-1).numpy()
    labels = hull[np.searchsorted(breaks, x, side="left")]
    return torch.from_numpy(labels).to(torch.int64).reshape(w.shape)


def _lower_envelope(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lines ``a_k x + b_k`` forming the pointwise minimum, left to right, and the x where each next one starts."""
    hull: list[int] = []
    breaks: list[float] = []
    for k in np.lexsort((b, -a)).tolist():  # slope descending; equal slopes: smaller intercept first
        if hull and a[hull[-1]] == a[k]:
            continue  # same slope, larger-or-equal intercept: never below
        while hull:
            j = hull[-1]
            x = (b[k] - b[j]) / (a[j] - a[k])  # from here on line k is below line j
            if breaks and x <= breaks[-1]:
                hull.pop()
                breaks.pop()
                continue
            breaks.append(x)
            break
        hull.append(k)
    return np.asarray(hull, dtype=np.int64), np.asarray(breaks, dtype=np.float64)


def ecsq(w: torch.Tensor, bits: int, lam: float, iterations: int = 100) -> ECSQResult:
    """Entropy-constrained quantization of 1-D values into at most ``2**bits`` codewords.

    Starts from ``2**bits`` evenly spaced centroids with equal probabilities, then alternates the Lagrangian
    assignment and the centroid/probability update until no label changes (or ``iterations``).

    Args:
        w: 1-D values (at least one).
        bits: bits per index, 1-16.
        lam: rate weight, >= 0.
        iterations: alternation cap.

    Returns:
        :class:`ECSQResult`.

    Example:
        >>> r = ecsq(torch.randn(1000), bits=3, lam=0.05)
        >>> r.centroids.shape
        torch.Size([8])
    """
    _check(bits, lam, iterations)
    k = 2 ** bits
    x = w.detach().reshape(-1).double().cpu()
    centroids = torch.linspace(float(x.min()), float(x.max()), k, dtype=torch.float64)
    probs = torch.full((k,), 1.0 / k, dtype=torch.float64)
    labels = torch.full(x.shape, -1, dtype=torch.int64)
    it, previous = 0, math.inf
    for it in range(1, iterations + 1):
        new = ecsq_assign(x, centroids, probs, lam)
        counts = torch.bincount(new, minlength=k).double()
        sums = torch.bincount(new, weights=x, minlength=k)
        centroids = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
        probs = counts / counts.sum()
        cost = _lagrangian(x, new, centroids, probs, lam)  # never increases: each step minimises it
        if torch.equal(new, labels) or (math.isfinite(previous) and previous - cost <= _RTOL * previous):
            labels = new
            break
        labels, previous = new, cost
    return ECSQResult(labels, centroids.float(), probs.float(), it)


def _lagrangian(x: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor, probs: torch.Tensor,
                lam: float) -> float:
    """Mean squared error plus ``lam`` times the index entropy in bits."""
    p = probs[probs > 0]
    return float(((x - centroids[labels]) ** 2).mean()) + lam * float(-(p * torch.log2(p)).sum())


def _check(bits: int, lam: float, iterations: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ConfigError(f"bits must be an integer from 1 to 16, got {bits!r}")
    if not math.isfinite(lam) or lam < 0:
        raise ConfigError(f"lam must be a finite number >= 0, got {lam!r}")
    if iterations < 1:
        raise ConfigError(f"iterations must be >= 1, got {iterations}")


def compact_levels(labels: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Renumber ``labels`` (indices into ``count`` levels; ``PRUNED`` passes through) onto the levels in use.

    Returns:
        ``(labels, used)``: the renumbered labels and the sorted indices of the used levels, so the compacted
        codebook is ``codebook[used]`` (same order).

    Example:
        >>> compact_levels(torch.tensor([3, -1, 0, 3]), 4)
        (tensor([ 1, -1,  0,  1]), tensor([0, 3]))
    """
    used = torch.unique(labels[labels >= 0])  # sorted
    renumber = torch.full((count,), PRUNED, dtype=torch.int64)
    renumber[used] = torch.arange(len(used))
    return torch.where(labels >= 0, renumber[labels.clamp_min(0)], labels), used


def ecsq_codebook(w: torch.Tensor, bits: int, lam: float, iterations: int = 100) -> CodebookWeight:
    """ECSQ of the nonzero entries of ``w`` as a trainable :class:`CodebookWeight`; zeros get index -1.

    The rate term empties cells; the codebook keeps only the codewords some weight uses (in increasing index
    order), so neither the file nor fine-tuning carries dead levels.

    Example:
        >>> q = ecsq_codebook(torch.randn(8, 8), bits=2, lam=0.1)
        >>> q.method
        'ecsq'
    """
    flat = w.detach().reshape(-1).float().cpu()
    alive = flat != 0
    result = ecsq(flat[alive], bits, lam, iterations)
    labels, used = compact_levels(result.labels, len(result.centroids))
    indices = torch.full(flat.shape, PRUNED, dtype=torch.int64)
    indices[alive] = labels
    return CodebookWeight(indices.reshape(w.shape).to(w.device), result.centroids[used].to(w.device), bits,
                          method="ecsq")


def ecsq_weights(model: nn.Module, bits: int | dict[str, int], lam: float, *, names: Iterable[str] | None = None,
                 exclude: Iterable[str] = (), iterations: int = 100, relative: bool = False) -> nn.Module:
    """Entropy-constrained quantization of each selected tensor (nonzero weights only; zeros stay zero).

    Args:
        model: any module, changed in place (pruning masks are stripped first, as in ``share_weights``).
        bits: bits per index (codebook size 2**bits), or ``{plain_name: bits}``.
        lam: rate weight >= 0, in squared weight units per bit; 0 gives k-means.
        names: plain names to quantize (default: every Linear/Conv weight).
        exclude: plain names to leave alone.
        iterations: alternation cap per tensor.
        relative: ``lam`` is relative to each tensor's scale: it is multiplied by the variance of that tensor's
            nonzero weights (0 for a single one), so one value suits layers of any magnitude.

    Returns:
        ``model``, whose selected weights are :class:`CodebookWeight` parametrizations (``method='ecsq'``).

    Raises:
        ConfigError: bad bits/lam/iterations, unknown name, NaN/Inf or all-zero weights; before any change.

    Example:
        >>> net = ecsq_weights(build_model("lenet300"), bits=4, lam=1e-4)
    """
    from netpress.prune.masks import is_masked, strip

    tensors = selected_tensors(model, names, exclude)
    per_tensor = bits_per_tensor(bits, tensors)
    _check(1, lam, iterations)
    values = nonzero_values(tensors)
    if is_masked(model):
        strip(model)
    for name, (module, attr) in tensors.items():
        if quantizer_of(module, attr) is not None:
            remove_quantizer(module, attr)
        scaled = lam * _nonzero_variance(values[name]) if relative else lam
        _attach(module, attr, ecsq_codebook(values[name], per_tensor[name], scaled, iterations))
    return model


def nonzero_values(tensors: dict) -> dict[str, torch.Tensor]:
    """``{name: detached value}`` of ``{name: (module, attr)}``, each finite with a nonzero entry.

    Raises:
        ConfigError: NaN/Inf or all-zero values, naming the tensor.
    """
    values = {name: getattr(m, attr).detach() for name, (m, attr) in tensors.items()}
    for name, w in values.items():
        check_finite(name, w)
        if not bool((w != 0).any()):
            raise ConfigError(f"{name} has no nonzero weights to quantize; exclude it")
    return values


def _nonzero_variance(w: torch.Tensor) -> float:
    alive = w[w != 0]
    return float(alive.var()) if alive.numel() > 1 else 0.0
