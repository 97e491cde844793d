"""Integer-only inference for Linear / Conv2d / ReLU / MaxPool / Flatten chains (Jacob et al. 2018).

int8 activations and weights (symmetric, zero point 0), int32 bias and accumulation, and per-output-channel
dyadic requantization ``y = clamp((acc * M0 + 2**(n-1)) >> n)`` with ``M0`` a 31-bit integer, so that
``M0 / 2**n ~= s_in * s_w / s_out``. A ReLU right after a Linear/Conv is fused as the lower clamp 0. The float
model is used only once, to calibrate activation scales; inference touches no float until the final logits.

:func:`integer_forward` runs the program with torch (float64 holds the int32 sums exactly); :func:`numpy_forward`
is an independent plain-numpy int64 implementation that it must match bit for bit.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from netpress.errors import ConfigError

QMIN, QMAX = -128, 127


@dataclasses.dataclass
class IntLayer:
    """One integer op. ``op``: ``linear`` / ``conv`` (weight int8, bias int32, m0/shift per channel, relu),
    ``maxpool`` (kernel, stride, padding), ``relu``, ``flatten``."""

    op: str
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    m0: np.ndarray | None = None
    shift: np.ndarray | None = None
    relu: bool = False
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    kernel: tuple[int, int] = (1, 1)


@dataclasses.dataclass
class IntProgram:
    """An integer-only network: input scale, ops, output scale (logits = int output * out_scale)."""

    in_scale: float
    layers: list[IntLayer]
    out_scale: float


SUPPORTED = (nn.Linear, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)


def chain(model: nn.Module) -> list[nn.Module]:
    """The model's leaf modules in order, when its forward is exactly their sequential application.

    Raises:
        ConfigError: an unsupported layer type.
    """
    leaves = [m for m in model.modules() if not list(m.children())]
    bad = sorted({type(m).__name__ for m in leaves if not isinstance(m, SUPPORTED)})
    if bad:
        raise ConfigError(f"integer-only inference supports Linear/Conv2d/ReLU/MaxPool2d/Flatten chains; found {bad}")
    return [m for m in leaves if not isinstance(m, (nn.Dropout, nn.Identity))]


def dyadic(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(M0, n)`` with ``M0`` in [2**30, 2**31) and ``M0 / 2**n == m`` to 31 bits, per element of ``m > 0``.

    Example:
        >>> dyadic(np.array([0.1]))     # 0.1 ~= 1717986918 / 2**34
        (array([1717986918]), array([34]))
    """
    mant, exp = np.frexp(np.asarray(m, dtype=np.float64))
    m0 = np.round(mant * (1 << 31)).astype(np.int64)
    carry = m0 == (1 << 31)
    m0 = np.where(carry, m0 // 2, m0)
    shift = 31 - exp - carry.astype(np.int64)
    if (shift < 1).any() or (shift > 62).any():
        raise ConfigError("a requantization multiplier is out of the dyadic range (scale ratio above 1 or tiny)")
    return m0, shift


@torch.inference_mode()
def integerize(model: nn.Module, calibration: torch.Tensor) -> IntProgram:
    """Build the integer program of a float chain model, calibrating activation scales on ``calibration``.

    Weights are rounded to symmetric per-output-channel int8 (exact when they already are on such a grid).

    Args:
        model: a Linear/Conv2d/ReLU/MaxPool2d/Flatten chain (e.g. LeNet-300-100, LeNet-5), decoded or compressed.
        calibration: a batch of float inputs (scales are max |activation| / 127 over it).

    Returns:
        An :class:`IntProgram` for :func:`integer_forward` / :func:`numpy_forward`.

    Raises:
        ConfigError: the model is not such a chain, or its forward differs from the chain's.

    Example:
        >>> prog = integerize(net, data.train.tensors[0][:512])
        >>> logits = integer_forward(prog, x)
    """
    from netpress.runtime.convert import _plain_copy

    plain = _plain_copy(model)
    mods = chain(plain)
    x = calibration.float()
    outs, h = [], x
    for m in mods:
        h = m(h)
        outs.append(h)
    if not torch.allclose(outs[-1], plain(x), rtol=1e-4, atol=1e-5):
        raise ConfigError(f"{type(model).__name__}'s forward is not the sequential chain of its layers")
    scale = _scale(x)
    program = IntProgram(scale, [], 1.0)
    i = 0
    while i < len(mods):
        m = mods[i]
        fuse = i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU) and isinstance(m, (nn.Linear, nn.Conv2d))
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            out_scale = _scale(outs[i + 1] if fuse else outs[i])
            program.layers.append(_weighted(m, scale, out_scale, fuse))
            scale = out_scale
        else:
            program.layers.append(_simple(m))
        i += 2 if fuse else 1
    program.out_scale = scale
    return program


def _scale(t: torch.Tensor) -> float:
    return max(float(t.abs().max()), 1e-8) / QMAX


def _weighted(m: nn.Module, s_in: float, s_out: float, relu: bool) -> IntLayer:
    from netpress.runtime.weights import int8_rows

    i8 = int8_rows(m.weight)
    s_w = i8.scale.double().numpy()
    bias = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(len(s_w))
    m0, shift = dyadic(s_in * s_w / s_out)
    layer = IntLayer("linear" if isinstance(m, nn.Linear) else "conv",
                     i8.q.reshape(m.weight.shape).numpy().astype(np.int8),
                     np.round(bias / (s_in * s_w)).astype(np.int64), m0, shift, relu)
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or m.dilation != (1, 1) or not isinstance(m.padding, tuple):
            raise ConfigError("integer-only conv supports groups=1, dilation=1, numeric padding")
        layer.stride, layer.padding = tuple(m.stride), tuple(m.padding)
    return layer


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _simple(m: nn.Module) -> IntLayer:
    if isinstance(m, nn.ReLU):
        return IntLayer("relu")
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise ConfigError("integer-only Flatten must flatten all but the batch dimension")
        return IntLayer("flatten")
    if m.dilation != 1 or m.ceil_mode:
        raise ConfigError("integer-only MaxPool2d supports dilation=1, ceil_mode=False")
    k = _pair(m.kernel_size)
    return IntLayer("maxpool", kernel=k, stride=_pair(m.stride or k), padding=_pair(m.padding))


def quantize_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Float input -> int8 (round half to even, clamp)."""
    return torch.round(x.double() / scale).clamp(QMIN, QMAX).to(torch.int8)


@torch.inference_mode()
def integer_forward(program: IntProgram, x: torch.Tensor, dequantize: bool = True) -> torch.Tensor:
    """Run the integer program with torch: int8 in, int32 sums (exact in float64), dyadic requantization.

    Args:
        program: from :func:`integerize`.
        x: float input batch.
        dequantize: return float logits (``int * out_scale``) instead of the int8 output.
    """
    q = quantize_input(x, program.in_scale)
    for layer in program.layers:
        q = _torch_op(layer, q)
    return q.double().mul(program.out_scale).float() if dequantize else q


def _torch_op(layer: IntLayer, q: torch.Tensor) -> torch.Tensor:
    if layer.op == "flatten":
        return q.reshape(q.shape[0], -1)
    if layer.op == "relu":
        return q.clamp_min(0)
    if layer.op == "maxpool":
        return F.max_pool2d(q.double(), layer.kernel, layer.stride, layer.padding).to(torch.int8)
    w = torch.from_numpy(layer.weight).double()
    b = torch.from_numpy(layer.bias).double()
    if layer.op == "linear":
        acc = F.linear(q.double(), w, b)
        shape = (1, -1)
    else:
        acc = F.conv2d(q.double(), w, b, layer.stride, layer.padding)
        shape = (1, -1, 1, 1)
    acc = acc.to(torch.int64)
    m0 = torch.from_numpy(layer.m0).reshape(shape)
    n = torch.from_numpy(layer.shift).reshape(shape)
    y = (acc * m0 + (1 << (n - 1))) >> n
    return y.clamp(0 if layer.relu else QMIN, QMAX).to(torch.int8)


def numpy_forward(program: IntProgram, x: np.ndarray) -> np.ndarray:
    """Plain numpy int64 reference of :func:`integer_forward` (returns the int8 output as int64)."""
    q = np.clip(np.round(np.asarray(x, dtype=np.float64) / program.in_scale), QMIN, QMAX).astype(np.int64)
    for layer in program.layers:
        q = _numpy_op(layer, q)
    return q


def _numpy_op(layer: IntLayer, q: np.ndarray) -> np.ndarray:
    if layer.op == "flatten":
        return q.reshape(q.shape[0], -1)
    if layer.op == "relu":
        return np.maximum(q, 0)
    if layer.op == "maxpool":
        return _np_maxpool(q, layer.kernel, layer.stride, layer.padding)
    w = layer.weight.astype(np.int64)
    if layer.op == "linear":
        acc = q @ w.T + layer.bias
        m0, n = layer.m0[None, :], layer.shift[None, :]
    else:
        acc = _np_conv(q, w, layer.stride, layer.padding) + layer.bias[None, :, None, None]
        m0, n = layer.m0[None, :, None, None], layer.shift[None, :, None, None]
    y = (acc * m0 + (np.int64(1) << (n - 1))) >> n
    return np.clip(y, 0 if layer.relu else QMIN, QMAX)


def _np_conv(q: np.ndarray, w: np.ndarray, stride, padding) -> np.ndarray:
    q = np.pad(q, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    kh, kw = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(q, (kh, kw), axis=(2, 3))[:, :, ::stride[0], ::stride[1]]
    return np.einsum("bchwij,ocij->bohw", win, w, optimize=True)


def _np_maxpool(q: np.ndarray, kernel, stride, padding) -> np.ndarray:
    q = np.pad(q, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])), constant_values=QMIN - 1)
    win = np.lib.stride_tricks.sliding_window_view(q, kernel, axis=(2, 3))[:, :, ::stride[0], ::stride[1]]
    return win.max(axis=(-2, -1))


def bytes_of(program: IntProgram) -> int:
    """Resident bytes of the integer program's weights (int8), biases (int32) and multipliers (int32 + shift)."""
    return sum(layer.weight.size + 4 * layer.bias.size + 5 * layer.m0.size
               for layer in program.layers if layer.weight is not None)


__all__ = ["IntLayer", "IntProgram", "IntegerNet", "integerize", "integer_forward", "numpy_forward", "dyadic", "chain",
           "bytes_of", "quantize_input"]


class IntegerNet(nn.Module):
    """An :class:`IntProgram` as a module (float in, float logits out), e.g. for ``netpress.train.evaluate``."""

    def __init__(self, program: IntProgram):
        super().__init__()
        self.program = program

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return integer_forward(self.program, x)
