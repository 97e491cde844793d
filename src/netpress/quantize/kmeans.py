"""Fast exact 1-D k-means (Lloyd) by sorting once and using prefix sums.

After one sort of the values and one prefix sum, each Lloyd iteration is O(k log n): the clusters of sorted
1-D data are contiguous runs, so the assignment step is a ``searchsorted`` of the k-1 midpoints between
neighbouring centroids and the update step reads each cluster's sum from the prefix sums. The final labels of
the (unsorted) input are found with a bucket table over the value range plus an exact correction, O(n).

Example:
    >>> result = kmeans_1d(torch.randn(10_000), k=32, init="linear")
    >>> result.centroids.shape, result.labels.shape
    (torch.Size([32]), torch.Size([10000]))
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from netpress.errors import ConfigError
from netpress.registry import Registry

InitFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
ASSIGN_CHUNK = 1 << 20  # values labelled per step (bounds the temporaries of :func:`assign_1d`)
INITS: Registry[InitFn] = Registry("k-means init")


@INITS.register("linear")
def linear_init(sorted_values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k centroids evenly spaced between the smallest and the largest value (Deep Compression's best)."""
    return np.linspace(sorted_values[0], sorted_values[-1], k)


@INITS.register("forgy")
def forgy_init(sorted_values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct values drawn at random from the data (Forgy / random init)."""
    picks = rng.choice(len(sorted_values), size=k, replace=False)
    return np.sort(sorted_values[picks].astype(np.float64))


@INITS.register("density")
def density_init(sorted_values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k centroids at evenly spaced levels of the empirical CDF (dense regions get more centroids)."""
    n = len(sorted_values)
    positions = ((np.arange(k) + 0.5) / k * n).astype(np.int64).clip(0, n - 1)
    return sorted_values[positions].astype(np.float64)


@dataclasses.dataclass
class KMeansResult:
    """Outcome of :func:`kmeans_1d`.

    Attributes:
        centroids: float32 ``[k]``, ascending (a cluster that became empty keeps its last centroid).
        labels: cluster index of each input value, in input order (int64 unless ``labels_dtype`` says otherwise).
        iterations: Lloyd iterations run.
        inertia: sum of squared distances of the values to their centroids.
        converged: True when the assignment stopped changing before ``max_iter``.
    """

    centroids: torch.Tensor
    labels: torch.Tensor
    iterations: int
    inertia: float
    converged: bool


def kmeans_1d(values: torch.Tensor | np.ndarray, k: int, init: str = "linear", max_iter: int = 300,
              seed: int = 0, tol: float = 0.0, labels_dtype: torch.dtype = torch.int64,
              skip_zeros: bool = False) -> KMeansResult:
    """Exact Lloyd k-means of 1-D data: one sort, prefix sums, O(k log n) per iteration.

    Args:
        values: any-shaped tensor or array (flattened); must be finite.
        k: number of clusters, 1 <= k <= number of values.
        init: a registered init (``linear``, ``forgy``, ``density``).
        max_iter: iteration cap; iteration stops as soon as the assignment is unchanged.
        seed: seed of random inits.
        tol: also stop when the summed squared centroid shift is <= ``tol * var(values)`` (scikit-learn's rule);
            0 runs until the assignment is unchanged or ``max_iter``.
        labels_dtype: integer dtype of the labels (a narrow one saves memory on large inputs).
        skip_zeros: cluster only the nonzero values (exact zeros get label -1), exactly as if they were removed
            first, without a copy of the survivors.

    Returns:
        :class:`KMeansResult`.

    Raises:
        ConfigError: k out of range, non-finite values, unknown init.

    Example:
        >>> kmeans_1d(torch.tensor([0.0, 0.1, 5.0, 5.2]), k=2).centroids
        tensor([0.0500, 5.1000])
    """
    x = _as_numpy(values)
    init_fn = INITS.get(init)
    if not 1 <= k <= x.size:
        raise ConfigError(f"k-means needs 1 <= k <= {x.size} values, got k={k}")
    if not all(np.isfinite(x[a:a + ASSIGN_CHUNK]).all() for a in range(0, x.size, ASSIGN_CHUNK)):
        raise ConfigError("k-means input contains NaN or Inf")
    xs = _drop_zeros(np.sort(x)) if skip_zeros else np.sort(x)
    if k > xs.size:
        raise ConfigError(f"k-means needs 1 <= k <= {xs.size} nonzero values, got k={k}")
    prefix = PrefixSums(xs)
    centroids = np.sort(np.asarray(init_fn(xs, k, np.random.default_rng(seed)), dtype=np.float64))
    threshold = tol * float(np.var(xs, dtype=np.float64)) if tol > 0 else -1.0
    cuts, iterations, converged = None, 0, False
    for iterations in range(1, max_iter + 1):
        new_cuts = _cuts(xs, centroids)
        old, centroids = centroids, _means(prefix, new_cuts, centroids)
        if (cuts is not None and np.array_equal(cuts, new_cuts)) or float(((centroids - old) ** 2).sum()) <= threshold:
            converged = True
            break
        cuts = new_cuts
    cuts = _cuts(xs, centroids)
    centroids32 = centroids.astype(np.float32)
    labels = assign_1d(x, centroids32, dtype=torch.empty(0, dtype=labels_dtype).numpy().dtype)
    if skip_zeros and xs.size < x.size:
        for a in range(0, x.size, ASSIGN_CHUNK):
            labels[a:a + ASSIGN_CHUNK][x[a:a + ASSIGN_CHUNK] == 0] = -1
    inertia = _inertia(prefix, cuts, centroids32.astype(np.float64))
    return KMeansResult(torch.from_numpy(centroids32), torch.from_numpy(labels), iterations, inertia, converged)


def _drop_zeros(xs: np.ndarray) -> np.ndarray:
    """Sorted values without their run of exact zeros, shifted left in place (chunk-sized temporaries only)."""
    zero = np.zeros(1, dtype=xs.dtype)  # a float64 needle would make searchsorted widen all of xs
    lo, hi = int(np.searchsorted(xs, zero, side="left")[0]), int(np.searchsorted(xs, zero, side="right")[0])
    gap = hi - lo
    if gap:
        for a in range(lo, xs.size - gap, ASSIGN_CHUNK):
            b = min(a + ASSIGN_CHUNK, xs.size - gap)
            xs[a:b] = xs[a + gap:b + gap]
    return xs[:xs.size - gap]


def _as_numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1)


def _cuts(xs: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Positions in sorted data where each cluster ends: cluster j is ``xs[cuts[j-1]:cuts[j]]``."""
    mids = _midpoints(centroids)
    inner = np.searchsorted(xs, mids, side="left")
    return np.concatenate([[0], inner, [len(xs)]])


def _midpoints(centroids: np.ndarray) -> np.ndarray:
    """Decision boundaries between neighbouring centroids, in float32 (the precision labels are assigned in)."""
    c = centroids.astype(np.float32)
    return ((c[:-1].astype(np.float64) + c[1:]) / 2).astype(np.float32)


class PrefixSums:
    """``sum(xs[:p])`` (and of squares) in float64 for any positions ``p``: block totals plus a short remainder.

    Building it is one pass of block sums (much cheaper than a full float64 cumsum); a query of m positions
    costs O(m * block).
    """

    def __init__(self, xs: np.ndarray, block: int = 32):
        self.xs, self.block = xs, block
        full = len(xs) // block * block
        blocks = xs[:full].reshape(-1, block)
        self.blocks = np.concatenate([[0.0], np.cumsum(blocks.sum(axis=1, dtype=np.float64))])
        self.squares = np.concatenate([[0.0], np.cumsum(np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64))])

    def at(self, positions: np.ndarray, squares: bool = False) -> np.ndarray:
        base = positions // self.block
        idx = base[:, None] * self.block + np.arange(self.block)[None, :]
        vals = np.where(idx < positions[:, None], self.xs[np.minimum(idx, len(self.xs) - 1)], 0).astype(np.float64)
        if squares:
            return self.squares[base] + (vals * vals).sum(axis=1)
        return self.blocks[base] + vals.sum(axis=1)


def _means(prefix: PrefixSums, cuts: np.ndarray, old: np.ndarray) -> np.ndarray:
    """New centroids: cluster means. Each empty cluster is re-seeded to split one of the clusters with the largest
    squared error (at its mean + one standard deviation), computed in O(k) from the prefix sums."""
    counts = np.diff(cuts)
    at = prefix.at(cuts)
    sums = at[1:] - at[:-1]
    new = np.where(counts > 0, sums / np.maximum(counts, 1), old)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        sq = prefix.at(cuts, squares=True)
        sse = np.maximum((sq[1:] - sq[:-1]) - sums * new, 0.0)
        worst = np.argsort(-sse, kind="stable")[: empty.size]
        worst = worst[sse[worst] > 0]
        new[empty[: worst.size]] = new[worst] + np.sqrt(sse[worst] / counts[worst])
    return np.sort(new)


def _inertia(prefix: PrefixSums, cuts: np.ndarray, c: np.ndarray) -> float:
    """sum (x - c)^2 = sum x^2 - sum_j (2 c_j S_j - n_j c_j^2), from the prefix sums in O(k) (no float64 copy)."""
    counts = np.diff(cuts)
    at = prefix.at(cuts)
    sums = at[1:] - at[:-1]
    total = float(prefix.at(cuts[-1:], squares=True)[0])
    return max(0.0, total - float((2 * c * sums - counts * c * c).sum()))


def assign_1d(values: np.ndarray, centroids: np.ndarray, table_bits: int = 16, dtype=np.int64) -> np.ndarray:
    """Nearest centroid of each value (ascending float32 centroids), exactly, in O(n).

    A value's label is the number of midpoints ``<=`` it. The value range is cut into 2**table_bits equal
    buckets; a bucket (with a one-bucket margin either side for rounding) that holds no midpoint gives its label
    directly from a table, and only the few values in the other buckets are located by binary search. Values are
    labelled ``ASSIGN_CHUNK`` at a time, so the temporaries stay small whatever the input size.

    Args:
        values: float32 1-D array.
        centroids: float32 ascending centroids.
        table_bits: log2 of the number of buckets.
        dtype: integer dtype of the labels.

    Returns:
        labels in ``[0, k)``.

    Example:
        >>> assign_1d(np.array([0.1, 0.9], np.float32), np.array([0.0, 1.0], np.float32))
        array([0, 1])
    """
    mids = _midpoints(centroids)
    out = np.empty(values.shape, dtype=dtype)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    table = _bucket_table(mids, lo, hi, table_bits) if mids.size and hi > lo else None
    for start in range(0, values.size, ASSIGN_CHUNK):
        part = values[start:start + ASSIGN_CHUNK]
        if table is None:
            out[start:start + ASSIGN_CHUNK] = np.searchsorted(mids, part, side="right")
        else:
            out[start:start + ASSIGN_CHUNK] = _assign_chunk(part, mids, lo, *table)
    return out


def _bucket_table(mids: np.ndarray, lo: float, hi: float, table_bits: int) -> tuple[np.ndarray, np.float32, int]:
    """Label of each bucket of the value range (-1 where a midpoint is within a bucket of it), its scale, count."""
    buckets = 1 << table_bits
    scale = np.float32(buckets / (hi - lo))
    edges = lo + np.arange(-1, buckets + 3, dtype=np.float64) / float(scale)
    below = np.searchsorted(mids, edges[:-3], side="right")       # count at the bucket's left margin
    above = np.searchsorted(mids, edges[3:], side="left")          # count just under its right margin
    return np.where(below == above, below, -1).astype(np.int16), scale, buckets


def _assign_chunk(values: np.ndarray, mids: np.ndarray, lo: float, table: np.ndarray, scale: np.float32,
                  buckets: int) -> np.ndarray:
    bucket = np.multiply(np.subtract(values, np.float32(lo)), scale).astype(np.int32)
    np.clip(bucket, 0, buckets, out=bucket)
    labels = np.take(table, bucket).astype(np.int64)
    unsure = np.flatnonzero(labels < 0)
    labels[unsure] = np.searchsorted(mids, values[unsure], side="right")
    return labels
