"""The optimal-brain-surgeon column sweep shared by GPTQ (rounding) and SparseGPT (pruning).

``W`` is processed column by column; each column's error is compensated on the later columns through the upper
Cholesky factor of ``H^-1`` (``H = 2 X^T X / n``, the layer's input Hessian), with lazy block updates. What
happens to each column is a :class:`Rounder` (round to a grid, prune, or both), supplied by the technique.
Pure tensor arithmetic: this module knows nothing of pruning masks or quantizers.
"""
from __future__ import annotations

import contextlib

import torch

from netpress.errors import ConfigError


def inverse_cholesky(hessian: torch.Tensor, percdamp: float) -> torch.Tensor:
    """Upper Cholesky factor ``U`` of ``(H + damp I)^-1`` (``U^T U = H^-1``); damping grows until it factors.

    Args:
        hessian: ``[c, c]`` symmetric positive semi-definite; all-zero rows (dead inputs) must be fixed first.
        percdamp: damping as a fraction of the mean diagonal.

    Returns:
        ``U``, upper triangular, ``hessian``'s dtype.

    Raises:
        ConfigError: ``H`` stays singular even with 1000x the damping (NaN/Inf inputs).
    """
    eye = torch.eye(hessian.shape[0], dtype=hessian.dtype, device=hessian.device)
    mean = hessian.diagonal().mean()
    damp = max(percdamp, 1e-8)
    for _ in range(4):
        chol, info = torch.linalg.cholesky_ex(_damped(hessian, damp * mean))
        if int(info) == 0:
            linv = torch.linalg.solve_triangular(chol, eye, upper=False)  # (cholesky_inverse is slow on CPU)
            del chol  # c x c matrices: keep at most three alive
            inv, info = torch.linalg.cholesky_ex(linv.T @ linv, upper=True)
            if int(info) == 0:
                return inv
        damp *= 10
    raise ConfigError("input Hessian is not positive definite even with extra damping (NaN/Inf activations?)")


def _damped(hessian: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``hessian + shift * I`` exactly (``+ 0.0`` off the diagonal, as the sum with ``shift * eye``), in one copy."""
    out = hessian.clone().add_(0.0)  # -0.0 + 0.0 = +0.0, as in the sum
    out.diagonal().add_(shift)
    return out


class Rounder:
    """What the sweep does to each column: ``column(j, W)`` returns the final value of column ``j`` (``W`` is
    the live, partly updated matrix); ``block(i1, i2, W, d)`` is called before each block (``d``: diagonal of
    the block's ``U``, for saliency-based pruning). Subclasses keep per-column state in the swept order."""

    def block(self, i1: int, i2: int, w: torch.Tensor, d: torch.Tensor) -> None:
        pass

    def column(self, j: int, w: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def permute(self, perm: torch.Tensor) -> None:
        """Reorder per-column state to the swept column order."""

    def nearest(self, w: torch.Tensor) -> torch.Tensor:
        """Every column of ``w`` rounded with no error feedback (no Hessian): column by column; subclasses may
        do it at once when that gives the same values."""
        return torch.stack([self.column(j, w) for j in range(w.shape[1])], 1)


def dead_inputs(w: torch.Tensor, hessian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hessian with dead inputs (zero diagonal) made regular, and W with their columns zeroed (they never
    contribute to the output)."""
    dead = hessian.diagonal() == 0
    if bool(dead.any()):
        hessian, w = hessian.clone(), w.clone()
        hessian[dead, dead] = 1
        w[:, dead] = 0
    return w, hessian


def obs_sweep(w: torch.Tensor, hessian: torch.Tensor, rounder: Rounder, *, blocksize: int = 128,
              percdamp: float = 0.01, act_order: bool = False) -> torch.Tensor:
    """Round (or prune) ``W`` column by column, compensating each column's error on the later columns.

    Args:
        w: ``[rows, cols]`` weights (not changed).
        hessian: ``[cols, cols]`` ``2 X^T X / n``; the sweep runs in its dtype.
        rounder: the per-column rule (its state in the original column order; permuted here if ``act_order``).
        blocksize: columns per lazy block.
        percdamp: damping fraction.
        act_order: sweep columns by decreasing ``H`` diagonal.

    Returns:
        ``Q`` ``[rows, cols]`` in the original column order, ``hessian``'s dtype.

    Example:
        >>> q = obs_sweep(w, h, UniformRounder(w, h, GPTQHparams(bits=4)))
    """
    w, hessian = dead_inputs(w.to(hessian.dtype), hessian)
    perm = torch.argsort(hessian.diagonal(), descending=True, stable=True) if act_order else None
    if perm is not None:
        w, hessian = w[:, perm], hessian[perm][:, perm]
        rounder.permute(perm)
    u = inverse_cholesky(hessian, percdamp)
    w = torch.empty_like(w.T).T.copy_(w)  # a column-major copy: the sweep reads and updates whole columns
    q = torch.zeros_like(w.T).T
    cols = w.shape[1]
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        ub = u[i1:i2, i1:i2]
        rounder.block(i1, i2, w, ub.diagonal())
        err = torch.zeros(i2 - i1, w.shape[0], dtype=w.dtype, device=w.device).T
        with _one_thread():  # tiny per-column ops: thread synchronisation costs more than it saves
            for i in range(i2 - i1):
                j = i1 + i
                q[:, j] = rounder.column(j, w)
                e = (w[:, j] - q[:, j]) / ub[i, i]
                w[:, j:i2] -= e[:, None] * ub[i, i:][None, :]
                err[:, i] = e
        w[:, i2:] -= err @ u[i1:i2, i2:]
    return (q if perm is None else q[:, torch.argsort(perm)]).contiguous()


@contextlib.contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
