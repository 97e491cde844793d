"""Inference modules that execute from compressed weights, and the registry of kernel kinds per layer type.

Kinds (``KERNELS``): ``dense`` (fp32, the decoded layer), ``int8`` (int8 weights with per-row scales; on CPU
fbgemm's dynamic-activation int8 GEMM/conv, int32 accumulation), ``lowbit`` (4/6/8-bit indices or affine levels,
dequantized per tile of rows / per looked-up row), ``csr`` (sparse CSR weight). Each builder returns None when
the kind does not apply to a layer (e.g. ``int8`` on an unquantized layer, or a re-quantization error above
the tolerance).
"""
from __future__ import annotations

import dataclasses
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from netpress.prune.speed import CSRLinear
from netpress.registry import Registry
from netpress.runtime.weights import Int8, LowBit, int8_rows, lowbit

TILE_ROWS = 256  # rows dequantized at a time by the low-bit Linear (bounded scratch memory)
_LINEAR_DYNAMIC = torch.ops.quantized.linear_dynamic  # takes any leading dims; int8 GEMM, fp32 out


def _has_vnni() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(ln.startswith("flags") and ("avx512_vnni" in ln or "avx_vnni" in ln) for ln in f)
    except OSError:
        return False


# 7-bit activations avoid int16 saturation in u8*s8 pair sums on CPUs without VNNI; with VNNI, full 8 bits
# (on MiniLM: sentence-embedding cosine vs the decoded model 0.988 instead of 0.958)
REDUCE_RANGE = not _has_vnni()


@dataclasses.dataclass
class LayerInfo:
    """What a kernel builder may use: whether the layer is quantized (has Codes) and the allowed int8 error."""

    name: str
    quantized: bool
    requant_tol: float
    min_sparsity: float = 0.5


# fbgemm's own packing: on the x86 engine (torch's default) the same per-channel int8 GEMM ran 1.1-1.3x slower
PACK_ENGINE = "fbgemm" if "fbgemm" in torch.backends.quantized.supported_engines else None
SAME_SCALE_RTOL = 1e-6  # rows whose steps agree this closely share one per-tensor scale


def _qint8(i8: Int8, axis: int = 0) -> torch.Tensor:
    """The int8 weight as a quantized tensor: per-tensor when every row has the same step (one scale in the GEMM
    epilogue, as for codes with one step per tensor), else per-row."""
    s = i8.scale.double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if s.numel() and float(s.max() - s.min()) <= SAME_SCALE_RTOL * float(s.abs().max()):
            return torch._make_per_tensor_quantized_tensor(i8.q, float(s.mean()), 0)
        zp = torch.zeros(s.numel(), dtype=torch.int64)
        return torch._make_per_channel_quantized_tensor(i8.q, s, zp, axis)


def prepack(i8: Int8, bias: torch.Tensor | None):
    """The packed weight ``quantized::linear_dynamic`` takes (packed by fbgemm where the build has it)."""
    engine = torch.backends.quantized.engine
    try:
        if PACK_ENGINE:
            torch.backends.quantized.engine = PACK_ENGINE
        return torch.ops.quantized.linear_prepack(_qint8(i8), bias)
    finally:
        torch.backends.quantized.engine = engine


class Int8Linear(nn.Module):
    """Linear from int8 weights (per-output-channel scales). CPU: ``quantized::linear_dynamic`` (activations
    quantized per call, int32 accumulation, fp32 out). CUDA: weight-only int8, dequantized in the matmul dtype.

    Args:
        linear: the decoded nn.Linear.
        i8: its int8 rows (:func:`netpress.runtime.weights.int8_rows`).
    """

    def __init__(self, linear: nn.Linear, i8: Int8):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.error = i8.error
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.on_cuda = linear.weight.is_cuda
        if self.on_cuda:
            self.register_buffer("q", i8.q.to(linear.weight.device))
            self.register_buffer("scale", i8.scale.to(linear.weight.device))
            self.register_buffer("bias", bias)
        else:
            self._packed = prepack(i8, bias)
            self._bytes = i8.q.numel() + 16 * self.out_features + (0 if bias is None else 4 * bias.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.on_cuda:
            return F.linear(x, self.q.to(x.dtype) * self.scale.to(x.dtype)[:, None], self.bias)
        return _LINEAR_DYNAMIC(x if x.dtype == torch.float32 else x.float(), self._packed, REDUCE_RANGE)

    def opaque_bytes(self) -> int:
        """Bytes held by the packed (opaque) weight: int8 values, scales, zero points, column offsets, bias."""
        return 0 if self.on_cuda else self._bytes

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8, error={self.error:.2e}"


class Int8Conv2d(nn.Module):
    """Conv2d (groups=1) from int8 weights as im2col + the int8 GEMM of :class:`Int8Linear`.

    (``quantized::conv2d_dynamic`` is not used: it clips large outputs, e.g. 12 of 16 wrong on a Kaiming conv.)
    """

    def __init__(self, conv: nn.Conv2d, i8: Int8):
        super().__init__()
        self.out_channels, self.error = conv.out_channels, i8.error
        self.kernel_size, self.stride, self.padding, self.dilation = (conv.kernel_size, conv.stride, conv.padding,
                                                                      conv.dilation)
        bias = None if conv.bias is None else conv.bias.detach().float().clone()
        self._packed = prepack(i8, bias)
        self._bytes = i8.q.numel() + 16 * self.out_channels + (0 if bias is None else 4 * bias.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cols = F.unfold(x.float(), self.kernel_size, self.dilation, self.padding, self.stride)  # [n, c*k*k, L]
        y = _LINEAR_DYNAMIC(cols.transpose(1, 2), self._packed, REDUCE_RANGE)  # [n, L, out]
        oh = (h + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        return y.transpose(1, 2).reshape(n, self.out_channels, oh, -1)

    def opaque_bytes(self) -> int:
        return self._bytes


class LowBitLinear(nn.Module):
    """Linear from packed low-bit weights, dequantized ``TILE_ROWS`` output rows at a time."""

    def __init__(self, linear: nn.Linear, lb: LowBit):
        super().__init__()
        self.in_features, self.out_features, self.bits, self.cols = (linear.in_features, linear.out_features,
                                                                     lb.bits, lb.cols)
        _register_lowbit(self, lb)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lb = _lowbit_of(self)
        outs = [F.linear(x, lb.dequantize(slice(r, r + TILE_ROWS)))
                for r in range(0, self.out_features, TILE_ROWS)]
        y = outs[0] if len(outs) == 1 else torch.cat(outs, -1)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}"


class LowBitConv2d(nn.Module):
    """Conv2d from packed low-bit weights (the small conv kernel is dequantized per call)."""

    def __init__(self, conv: nn.Conv2d, lb: LowBit):
        super().__init__()
        self.bits, self.cols = lb.bits, lb.cols
        self.conf = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
        _register_lowbit(self, lb)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lb = _lowbit_of(self)
        return F.conv2d(x, lb.dequantize().reshape(lb.shape), self.bias, **self.conf)


class LowBitEmbedding(nn.Module):
    """Embedding from packed low-bit rows: gather the looked-up rows, then dequantize only those."""

    def __init__(self, emb: nn.Embedding, lb: LowBit):
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.bits, self.cols = (emb.num_embeddings, emb.embedding_dim,
                                                                         lb.bits, lb.cols)
        self.padding_idx = emb.padding_idx
        _register_lowbit(self, lb)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        return _lowbit_of(self).dequantize(flat).reshape(*ids.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, bits={self.bits}"


def _register_lowbit(m: nn.Module, lb: LowBit) -> None:
    m.shape = lb.shape
    m.register_buffer("packed", lb.packed)
    for attr in ("scale", "offset", "codebook"):
        m.register_buffer(attr, getattr(lb, attr))


def _lowbit_of(m: nn.Module) -> LowBit:
    return LowBit(m.packed, m.bits, m.cols, m.shape, m.scale, m.offset, m.codebook)


def _dense(module: nn.Module, info: LayerInfo) -> nn.Module:
    return module


def _int8(module: nn.Module, info: LayerInfo) -> nn.Module | None:
    if not info.quantized or (isinstance(module, nn.Conv2d) and (module.weight.is_cuda or module.groups != 1)):
        return None
    i8 = int8_rows(module.weight)
    if not i8.exact and i8.error > info.requant_tol:
        return None
    return (Int8Linear if isinstance(module, nn.Linear) else Int8Conv2d)(module, i8)


def _lowbit(module: nn.Module, info: LayerInfo) -> nn.Module | None:
    if not info.quantized:
        return None
    lb = lowbit(module.weight)
    if lb is None:
        return None
    cls = {nn.Linear: LowBitLinear, nn.Conv2d: LowBitConv2d, nn.Embedding: LowBitEmbedding}[type(module)]
    return cls(module, lb)


def _csr(module: nn.Module, info: LayerInfo) -> nn.Module | None:
    w = module.weight
    if w.is_cuda or float((w == 0).float().mean()) < info.min_sparsity:
        return None
    return CSRLinear(module)


KERNELS: Registry = Registry("runtime kernel")
KERNELS.register("dense", _dense)
KERNELS.register("int8", _int8)
KERNELS.register("lowbit", _lowbit)
KERNELS.register("csr", _csr)

# which kinds apply to which layer type (exact types: subclasses may change forward)
KINDS_FOR = {nn.Linear: ("dense", "int8", "lowbit", "csr"), nn.Conv2d: ("dense", "int8", "lowbit"),
             nn.Embedding: ("dense", "lowbit")}


def supported(module: nn.Module) -> bool:
    """Whether the runtime has kernels for this module (plain Linear / Conv2d / Embedding, no max_norm etc.)."""
    if type(module) not in KINDS_FOR:
        return False
    if isinstance(module, nn.Embedding):
        return module.max_norm is None and not module.sparse
    if isinstance(module, nn.Conv2d):
        return module.padding_mode == "zeros" and isinstance(module.padding, tuple)
    return True


def build(kind: str, module: nn.Module, info: LayerInfo) -> nn.Module | None:
    """The runtime module of ``kind`` for ``module``, or None when that kind does not apply."""
    if kind not in KINDS_FOR.get(type(module), ()):
        return None
    return KERNELS.get(kind)(module, info)
