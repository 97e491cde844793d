"""Per-layer input statistics captured with forward pre-hooks, streamed over calibration batches.

For a layer computing ``y = W x`` on the rows ``x`` of its input matrix ``X`` (Linear: every token/position;
Conv: every unfolded patch, im2col), we keep, without storing ``X``:
- ``hessian`` ``H = 2 X^T X / n`` (the Hessian of ``||X W^T - X Q^T||^2`` per output row), optional;
- ``sq_norms`` ``||X_j||_2^2`` for each input column ``j`` (Wanda's activation norms).

Memory is one ``cols x cols`` accumulator per hooked layer, whatever the number of batches.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from netpress.calibrate.inputs import call_model
from netpress.modes import eval_mode

SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclasses.dataclass
class InputStats:
    """Statistics of one layer's input matrix ``X`` (``n`` rows, ``cols`` columns).

    Attributes:
        n: rows of ``X`` seen (tokens, positions or patches).
        sq_norms: ``[cols]`` float, ``sum_rows x_j^2``.
        hessian: ``[cols, cols]`` ``2 X^T X / n``, or None when only norms were collected.
    """

    n: int
    sq_norms: torch.Tensor
    hessian: torch.Tensor | None = None


def supports(module: nn.Module) -> bool:
    """Whether ``module``'s weight has a matrix view with a known input matrix (Linear, Conv1d/2d, groups=1)."""
    return isinstance(module, SUPPORTED) and getattr(module, "groups", 1) == 1


def weight_matrix(w: torch.Tensor) -> torch.Tensor:
    """``[out, in]`` view of a Linear or Conv weight (Conv: ``[out, C * kernel]``, the im2col column order)."""
    return w.reshape(w.shape[0], -1)


def input_matrix(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The rows ``X`` the layer multiplies by ``W^T`` (Linear: flattened tokens; Conv: im2col patches).

    Example:
        >>> input_matrix(nn.Conv2d(3, 8, 3), torch.randn(2, 3, 5, 5)).shape
        torch.Size([18, 27])
    """
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(module, nn.Conv1d):
        x, kernel = x.unsqueeze(-2), (1, *module.kernel_size)
        stride, dilation, pad = (1, *module.stride), (1, *module.dilation), _pads(module, 1)
    else:
        kernel, stride, dilation, pad = module.kernel_size, module.stride, module.dilation, _pads(module, 2)
    x = F.pad(x, pad, mode="constant" if module.padding_mode == "zeros" else module.padding_mode)
    cols = F.unfold(x, kernel, dilation=dilation, stride=stride)  # [N, C*k, L]
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _pads(module: nn.Module, dims: int) -> tuple[int, ...]:
    """F.pad amounts (last dim first) for the module's padding, including ``'same'``/``'valid'``."""
    if module.padding == "valid":
        return (0, 0) * dims
    if module.padding == "same":
        totals = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size)]
        pairs = [(t // 2, t - t // 2) for t in totals]
    else:
        pairs = [(p, p) for p in module.padding]
    pairs = ([(0, 0)] * (dims - len(pairs))) + pairs
    return tuple(v for pair in reversed(pairs) for v in pair)


class Accumulator:
    """Streams ``X^T X`` (or only ``diag``) of one layer's inputs.

    Args:
        hessian: keep the full ``cols x cols`` matrix (else only the column norms).
        dtype: accumulation (and product) dtype, e.g. float32 (fast) or float64 (exact references).
    """

    def __init__(self, hessian: bool = True, dtype: torch.dtype = torch.float32):
        self.hessian, self.dtype = hessian, dtype
        self.xtx: torch.Tensor | None = None
        self.sq: torch.Tensor | None = None
        self.n = 0

    def add(self, rows: torch.Tensor) -> None:
        rows = rows.detach().to(self.dtype)
        sq = (rows * rows).sum(0)
        self.sq = sq if self.sq is None else self.sq + sq
        if self.hessian:
            xtx = rows.T @ rows
            self.xtx = xtx if self.xtx is None else self.xtx.add_(xtx)
        self.n += rows.shape[0]

    def result(self) -> InputStats:
        h = None if self.xtx is None else self.xtx.mul_(2.0 / max(self.n, 1))
        return InputStats(self.n, self.sq, h)


def layer_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The input tensor of a layer call, passed positionally (``layer(x)``) or by keyword (``layer(input=x)``)."""
    return args[0] if args else next(iter(kwargs.values()))


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the layers of interest have seen their input."""


@torch.no_grad()
def capture(model: nn.Module, inputs: list[Any], modules: dict[str, nn.Module], *, hessian: bool = True,
            dtype: torch.dtype = torch.float32, stop_at: nn.Module | None = None) -> dict[str, InputStats]:
    """Run ``model`` over ``inputs`` and return the input statistics of each module in ``modules``.

    Args:
        model: the model (eval mode during the passes; its mode is restored).
        inputs: calibration batches.
        modules: ``{name: module}`` with :func:`supports` true.
        hessian: collect ``H`` (else only column norms).
        dtype: accumulation dtype.
        stop_at: end each forward pass when this module is reached (after its input is recorded): layers after
            it are not run.

    Returns:
        ``{name: InputStats}`` for the modules that saw input (those never called are absent).

    Example:
        >>> stats = capture(net, [x], {"fc1": net.fc1})
        >>> stats["fc1"].hessian.shape
        torch.Size([784, 784])
    """
    accs = {name: Accumulator(hessian, dtype) for name in modules}

    def hook_for(name: str, module: nn.Module):
        def hook(_m, args, kwargs):
            accs[name].add(input_matrix(module, layer_input(args, kwargs)))
            if module is stop_at:
                raise _Stop
        return hook

    handles = [m.register_forward_pre_hook(hook_for(n, m), with_kwargs=True) for n, m in modules.items()]
    try:
        with eval_mode(model):
            for batch in inputs:
                try:
                    call_model(model, batch)
                except _Stop:
                    pass
    finally:
        for h in handles:
            h.remove()
    return {name: acc.result() for name, acc in accs.items() if acc.n}
