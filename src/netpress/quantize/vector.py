"""Vector quantization of weight matrices: product quantization (PQ) and residual quantization (RQ).

For W in R^{m x n} (rows are the m vectors; float weights of b bits):

- PQ splits the columns into s blocks of n/s; each block's m sub-vectors are k-means clustered into k codewords.
  Storage: s codebooks of k x (n/s) floats plus m*s indices of log2 k bits, so
  rate = m n b / (k n b + m s log2 k).
- RQ clusters the rows into k codewords, then the residuals, t times; a row is the sum of its t codewords.
  Storage: t codebooks of k x n floats plus t*m indices, so rate = m n b / (t k n b + t m log2 k).
  (Gong et al. / the seeds write it as m / (tk + log2(k) t n) in their own notation.)

Example:
    >>> pq = product_quantize(torch.randn(300, 100), k=16, blocks=10)
    >>> pq.compression_rate, pq.error
"""
from __future__ import annotations

import dataclasses
import math

import torch

from netpress.errors import ConfigError


def kmeans_vectors(x: torch.Tensor, k: int, iterations: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd k-means of the rows of ``x`` (k-means++ init); an emptied cluster is re-seeded at the worst-fit row.

    Args:
        x: ``[N, d]`` float.
        k: clusters, 1 <= k <= N.
        iterations: Lloyd iterations (stops early when assignments settle).
        seed: init seed.

    Returns:
        ``(centroids [k, d], labels [N])``.

    Example:
        >>> c, labels = kmeans_vectors(torch.randn(100, 4), 8)
    """
    if not 1 <= k <= x.shape[0]:
        raise ConfigError(f"k={k} codewords need at least k vectors (have {x.shape[0]})")
    x = x.float()
    g = torch.Generator().manual_seed(seed)
    centroids = _kmeans_pp(x, k, g)
    labels = None
    for _ in range(iterations):
        dist = torch.cdist(x, centroids)
        new = dist.argmin(1)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        counts = torch.bincount(labels, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp_min(1)[:, None])
        if empty.any():
            worst = dist.gather(1, labels[:, None]).squeeze(1).topk(int(empty.sum())).indices
            centroids[empty] = x[worst]
    return centroids, torch.cdist(x, centroids).argmin(1)


def _kmeans_pp(x: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    first = torch.randint(x.shape[0], (1,), generator=g)
    chosen = [x[first].squeeze(0)]
    d2 = ((x - chosen[0]) ** 2).sum(1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1 / len(d2))
        nxt = torch.multinomial(probs, 1, generator=g)
        chosen.append(x[nxt].squeeze(0))
        d2 = torch.minimum(d2, ((x - chosen[-1]) ** 2).sum(1))
    return torch.stack(chosen)


@dataclasses.dataclass
class VQResult:
    """A vector-quantized matrix.

    Attributes:
        reconstruction: the quantized matrix (same shape as the input).
        indices: ``[blocks or stages, m]`` int64 codeword indices.
        codebooks: ``[blocks or stages, k, d]`` codewords.
        compression_rate: original bits / stored bits (formulas in the module docstring).
        formula: the formula used, as text.
        error: relative squared error ||W - W_hat||^2 / ||W||^2.
    """

    reconstruction: torch.Tensor
    indices: torch.Tensor
    codebooks: torch.Tensor
    compression_rate: float
    formula: str
    error: float


def _check_matrix(w: torch.Tensor, k: int) -> None:
    if w.dim() != 2:
        raise ConfigError(f"vector quantization needs a 2-D matrix, got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise ConfigError("matrix contains NaN/Inf")
    if not 1 <= k <= w.shape[0]:
        raise ConfigError(f"k={k} codewords need at least k rows (have {w.shape[0]})")


def _rel_error(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    return float(((w - w_hat) ** 2).sum() / (w ** 2).sum().clamp_min(1e-30))


def product_quantize(w: torch.Tensor, k: int, blocks: int, float_bits: int = 32, iterations: int = 50,
                     seed: int = 0) -> VQResult:
    """Product quantization: k-means on the rows of each of ``blocks`` column blocks.

    Args:
        w: ``[m, n]`` matrix (e.g. a Linear weight).
        k: codewords per block (<= m).
        blocks: s, must divide n.
        float_bits: b, bits of an original float.
        iterations: Lloyd iterations.
        seed: k-means seed.

    Returns:
        :class:`VQResult` with rate m n b / (k n b + m s log2 k).

    Raises:
        ConfigError: s does not divide n, k > m, non-finite values.

    Example:
        >>> product_quantize(torch.randn(64, 32), k=8, blocks=4).indices.shape
        torch.Size([4, 64])
    """
    _check_matrix(w, k)
    m, n = w.shape
    if blocks < 1 or n % blocks:
        raise ConfigError(f"blocks={blocks} must divide the {n} columns")
    parts = w.detach().float().reshape(m, blocks, n // blocks).transpose(0, 1)
    books, idx = zip(*(kmeans_vectors(p, k, iterations, seed) for p in parts))
    codebooks, indices = torch.stack(books), torch.stack(idx)
    recon = torch.stack([codebooks[i][indices[i]] for i in range(blocks)]).transpose(0, 1).reshape(m, n)
    rate = m * n * float_bits / (k * n * float_bits + m * blocks * math.log2(k)) if k > 1 else float("inf")
    return VQResult(recon, indices, codebooks, rate, "m n b / (k n b + m s log2 k)", _rel_error(w.float(), recon))


def residual_quantize(w: torch.Tensor, k: int, stages: int, float_bits: int = 32, iterations: int = 50,
                      seed: int = 0) -> VQResult:
    """Residual quantization: ``stages`` rounds of k-means on the rows' residuals; a row = sum of its codewords.

    Args:
        w: ``[m, n]`` matrix.
        k: codewords per stage (<= m).
        stages: t >= 1.
        float_bits: b.
        iterations: Lloyd iterations per stage.
        seed: k-means seed.

    Returns:
        :class:`VQResult` with rate m n b / (t k n b + t m log2 k).

    Example:
        >>> residual_quantize(torch.randn(64, 8), k=8, stages=3).error < 0.5
        True
    """
    _check_matrix(w, k)
    if stages < 1:
        raise ConfigError(f"stages must be >= 1, got {stages}")
    m, n = w.shape
    residual, recon = w.detach().float().clone(), torch.zeros(m, n)
    books, idx = [], []
    for t in range(stages):
        c, labels = kmeans_vectors(residual, k, iterations, seed + t)
        recon += c[labels]
        residual -= c[labels]
        books.append(c)
        idx.append(labels)
    rate = m * n * float_bits / (stages * k * n * float_bits + stages * m * math.log2(k)) if k > 1 else float("inf")
    return VQResult(recon, torch.stack(idx), torch.stack(books), rate, "m n b / (t k n b + t m log2 k)",
                    _rel_error(w.float(), recon))
