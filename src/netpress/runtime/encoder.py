"""Lean BERT-family encoder layers: the same function as a Hugging Face ``BertLayer`` in a few tensor ops.

A layer is recognised by its structure, not its class name: ``attention.self.{query,key,value}``,
``attention.output.{dense,LayerNorm}``, ``intermediate.{dense,intermediate_act_fn}``, ``output.{dense,LayerNorm}``,
no cross-attention, not a decoder, no feed-forward chunking, absolute positions (BERT, RoBERTa, ELECTRA, ...).
Such a layer keeps its class and submodules (so names, state dict, plan rows and Hugging Face's output hooks stay
as they were) and gets a lean ``forward``:

    q, k, v projections (the runtime's kernels; one int8 GEMM when they are fused) -> head views ->
    attention (:func:`attend`: two batched matmuls on CPU) with the mask as given -> output projection ->
    residual + LayerNorm -> FFN (the layer's own activation) -> residual + LayerNorm

It skips the per-module Python of the Hugging Face code (dropout calls, attention-interface dispatch, contiguous
copies) and SDPA's CPU kernel, slow for BERT-sized heads with a mask; with ``skip_padding`` it runs everything
after the attention on real tokens only (:func:`lean_forward`). The original ``forward`` runs instead whenever
the lean one might differ: training mode, cross-attention inputs, a cache, any other non-empty keyword (e.g.
``output_attentions``), a mask that is not a 4-D bool / float tensor, hooks on a skipped submodule (those of
the layer when it was made lean), or a class whose ``forward`` does not return the hidden states as one tensor
(checked on the first call, which runs both and returns the lean result).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from netpress.runtime.fusion import FusedMember
from netpress.runtime.kernels import REDUCE_RANGE, Int8Linear

_LEAN_CLASSES: dict[type, type] = {}


def is_bert_layer(module: nn.Module) -> bool:
    """Whether ``module`` has the structure of a Hugging Face BERT-like encoder layer the lean path computes.

    Example:
        >>> is_bert_layer(AutoModel.from_pretrained(folder).encoder.layer[0])
        True
    """
    try:
        sa, so = module.attention.self, module.attention.output
        parts = (sa.query, sa.key, sa.value, so.dense, module.intermediate.dense, module.output.dense)
        norms = (so.LayerNorm, module.output.LayerNorm)
        act = module.intermediate.intermediate_act_fn
        heads, size = int(sa.num_attention_heads), int(sa.attention_head_size)
    except (AttributeError, TypeError):
        return False
    plain = all(isinstance(p, nn.Module) for p in parts) and all(type(n) is nn.LayerNorm for n in norms)
    return (plain and callable(act) and heads * size == so.LayerNorm.normalized_shape[0]
            and not getattr(module, "add_cross_attention", False) and not getattr(module, "is_decoder", False)
            and not getattr(module, "chunk_size_feed_forward", 0) and not getattr(sa, "is_causal", False)
            and getattr(sa, "position_embedding_type", "absolute") == "absolute"
            and not hasattr(module, "crossattention"))


def make_lean(model: nn.Module, skip_padding: bool = False) -> list[str]:
    """Give every BERT-like encoder layer of ``model`` (in place) the lean forward; the names of those layers.

    Args:
        model: any module (e.g. a runtime model from :func:`netpress.runtime.convert`).
        skip_padding: compute only the real tokens of padded batches (see :func:`lean_forward`).

    Returns:
        The names of the layers made lean (``[]`` when none is recognised).

    Example:
        >>> make_lean(fast)
        ['model.encoder.layer.0', ..., 'model.encoder.layer.5']
    """
    names = []
    for name, module in model.named_modules():
        if isinstance(module, LeanEncoderLayer) or not is_bert_layer(module):
            continue
        module.__class__ = _lean_class(type(module))
        module.lean_returns_tensor = None  # unknown until the first call
        module.lean_skip_padding = skip_padding
        module.lean_skipped = _skipped(module)  # checked for hooks on every call (looked up once: ~13 us)
        names.append(name)
    return names


def _lean_class(cls: type) -> type:
    if cls not in _LEAN_CLASSES:
        _LEAN_CLASSES[cls] = type(f"Lean{cls.__name__}", (LeanEncoderLayer, cls), {"__module__": __name__})
    return _LEAN_CLASSES[cls]


class LeanEncoderLayer(nn.Module):
    """Put in front of a BERT-like layer's own class by :func:`make_lean`; ``super().forward`` is the original."""

    lean_returns_tensor: bool | None = None
    lean_skip_padding: bool = False
    lean_skipped: tuple = ()

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, *args, **kwargs):
        if not self._lean_applies(hidden_states, attention_mask, encoder_hidden_states, args, kwargs):
            return super().forward(hidden_states, attention_mask, encoder_hidden_states, *args, **kwargs)
        if self.lean_returns_tensor is None:  # first call: what does this class's forward return?
            out = super().forward(hidden_states, attention_mask, encoder_hidden_states, *args, **kwargs)
            self.lean_returns_tensor = isinstance(out, torch.Tensor) and out.shape == hidden_states.shape
            if not self.lean_returns_tensor:
                return out
        return lean_forward(self, hidden_states, attention_mask, self.lean_skip_padding)

    def _lean_applies(self, x, mask, encoder_hidden_states, args, kwargs) -> bool:
        if self.training or encoder_hidden_states is not None or self.lean_returns_tensor is False:
            return False
        if any(a is not None for a in args) or any(v is not None and v is not False
                                                   for k, v in kwargs.items() if k != "position_ids"):
            return False
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.is_floating_point():
            return False
        if mask is not None and not (isinstance(mask, torch.Tensor) and mask.dim() == 4
                                     and (mask.dtype == torch.bool or mask.is_floating_point())):
            return False
        return not _hooked(self)


def _skipped(layer: nn.Module) -> tuple[nn.Module, ...]:
    """The submodules whose own forward the lean path does not call."""
    att = layer.attention
    act = layer.intermediate.intermediate_act_fn
    out = [att, att.self, att.output, att.output.LayerNorm, layer.intermediate, layer.output, layer.output.LayerNorm]
    return tuple(out + [m for m in (getattr(att.self, "dropout", None), getattr(att.output, "dropout", None),
                                    getattr(layer.output, "dropout", None)) if isinstance(m, nn.Module)] + (
        [act] if isinstance(act, nn.Module) else []))


def _hooked(layer: nn.Module) -> bool:
    from torch.nn.modules import module as torch_module

    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in layer.lean_skipped)


def lean_forward(layer: nn.Module, x: torch.Tensor, mask: torch.Tensor | None,
                 skip_padding: bool = False) -> torch.Tensor:
    """One BERT-like encoder layer in inference: self-attention, add & norm, feed-forward, add & norm.

    Args:
        layer: a layer :func:`is_bert_layer` accepts.
        x: hidden states ``[batch, seq, hidden]``.
        mask: None, or the 4-D mask the encoder hands its layers (bool: True = attend; float: added to scores).
        skip_padding: with a bool mask that only masks padded keys (the same for every query), run everything
            after the attention (output projection, feed-forward, norms) on the real tokens only; padded positions
            pass ``x`` through unchanged (Hugging Face computes values there that no real token reads). Real
            tokens get the same function; with int8 kernels those layers quantize activations over real rows.

    Returns:
        The layer's output hidden states ``[batch, seq, hidden]``.
    """
    sa, so = layer.attention.self, layer.attention.output
    b, s, h = x.shape
    q, k, v = _heads(sa, x)
    ctx = attend(q, k, v, mask, getattr(sa, "scaling", None)).transpose(1, 2).reshape(b * s, -1)
    flat = x.reshape(b * s, h)
    rows = padding_rows(mask, b, s) if skip_padding else None
    if rows is not None:
        ctx, flat = ctx.index_select(0, rows.real), flat.index_select(0, rows.real)
    a = _add_norm(_linear(so.dense, ctx), flat, so.LayerNorm)
    act = _activation(layer.intermediate.intermediate_act_fn)
    y = _add_norm(_linear(layer.output.dense, act(_linear(layer.intermediate.dense, a))), a, layer.output.LayerNorm)
    if rows is not None:  # real rows, then the padded rows of x, put back in place by one gather
        y = torch.cat([y, x.reshape(b * s, h).index_select(0, rows.padded)]).index_select(0, rows.order)
    return y.view(b, s, h)


class PaddingRows(NamedTuple):
    """Flat row indices of a padded batch: ``real`` tokens, ``padded`` ones, and ``order`` (row ``i`` of the batch
    is row ``order[i]`` of ``cat([real rows, padded rows])``)."""

    real: torch.Tensor
    padded: torch.Tensor
    order: torch.Tensor


# what was derived from the last mask seen (every layer of one forward gets the same mask object):
# (mask, its version, {what: value}); holds that mask and its derived tensors until the next one
_last_mask: tuple = (None, None, {})


def _per_mask(mask: torch.Tensor, what: tuple, make):
    """``make()``, computed once per mask object (and in-place version) for each ``what``."""
    global _last_mask
    last, version, values = _last_mask
    if mask is not last or _version(mask) != version:
        values = {}
        _last_mask = (mask, _version(mask), values)
    if what not in values:
        values[what] = make()
    return values[what]


def padding_rows(mask: torch.Tensor | None, b: int, s: int) -> PaddingRows | None:
    """The real and padded rows when ``mask`` is a bool key-padding mask (one row for every query) that masks
    some keys and leaves each sequence at least one; else None. Computed once per mask.

    Example:
        >>> padding_rows(torch.tensor([True, False])[None, None, None].expand(1, 1, 2, 2), 1, 2).real
        tensor([0])
    """
    return None if mask is None else _per_mask(mask, ("rows", b, s), lambda: _padding_rows(mask, b, s))


def _version(t: torch.Tensor) -> int | None:
    """The in-place version counter (None for inference tensors, which have none)."""
    return None if t.is_inference() else t._version


def _padding_rows(mask: torch.Tensor | None, b: int, s: int) -> PaddingRows | None:
    if mask is None or mask.dtype != torch.bool or mask.dim() != 4 or tuple(mask.shape[:2]) != (b, 1) \
            or mask.shape[-1] != s or mask.shape[2] not in (1, s):
        return None
    keys = mask[:, 0, 0, :]
    if bool(keys.all()) or not bool(keys.any(-1).all()) or not bool((mask == keys[:, None, None]).all()):
        return None
    flat = keys.reshape(-1)
    real, padded = flat.nonzero().squeeze(1), (~flat).nonzero().squeeze(1)
    order = torch.empty_like(flat, dtype=torch.long)
    order[torch.cat([real, padded])] = torch.arange(flat.numel())
    return PaddingRows(real, padded, order)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
           scale: float | None = None) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v`` per head, as ``scaled_dot_product_attention`` computes it.

    On CPU as two batched matmuls with the mask added inside the first (``baddbmm``): for BERT-sized heads
    (32-64 wide, tens of tokens) about a quarter faster than SDPA's CPU kernel with a mask (MiniLM, batch 32).
    A bool mask becomes ``0`` / the dtype's lowest value, so a query whose keys are all masked averages them
    (SDPA: NaN). Elsewhere: ``scaled_dot_product_attention``.

    Args:
        q, k, v: ``[batch, heads, seq, head_size]`` (any strides).
        mask: None, or broadcastable to ``[batch, heads, seq_q, seq_k]``: bool (True = attend) or additive float.
        scale: None for ``head_size ** -0.5``.

    Returns:
        ``[batch, heads, seq_q, head_size]``.

    Example:
        >>> attend(q, k, v, None).shape == q.shape
        True
    """
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, mask, scale=scale)
    b, n, s, d = q.shape
    t = k.shape[2]
    scale = d ** -0.5 if scale is None else scale
    q3, k3, v3 = q.reshape(b * n, s, d), k.reshape(b * n, t, d), v.reshape(b * n, t, d)
    if mask is None:
        scores = torch.bmm(q3, k3.transpose(1, 2)).mul_(scale)
    else:
        bias = _per_mask(mask, ("bias", b, n, s, t, q.dtype), lambda: _score_bias(mask, b, n, s, t, q.dtype))
        scores = torch.baddbmm(bias, q3, k3.transpose(1, 2), alpha=scale)
    return torch.bmm(torch.softmax(scores, -1), v3).view(b, n, s, d)


def _score_bias(mask: torch.Tensor, b: int, n: int, s: int, t: int, dtype: torch.dtype) -> torch.Tensor:
    """The mask as ``[b * n, s, t]`` scores to add (bool: 0 / the dtype's lowest value)."""
    if mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=dtype).masked_fill_(~mask, torch.finfo(dtype).min)
    return mask.to(dtype).expand(b, n, s, t).reshape(b * n, s, t)


def _heads(sa: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query, key, value as ``[batch, heads, seq, head_size]`` views (of one fused GEMM's output when fused)."""
    b, s, _ = x.shape
    n, d = sa.num_attention_heads, sa.attention_head_size
    group = _fused_group(sa)
    if group is not None:
        qkv = torch.ops.quantized.linear_dynamic(x if x.dtype == torch.float32 else x.float(), group._packed,
                                                 REDUCE_RANGE)
        qkv = qkv.view(b, s, 3, n, d).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]
    return tuple(_linear(p, x).view(b, s, n, d).transpose(1, 2) for p in (sa.query, sa.key, sa.value))


def _linear(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``; a CPU :class:`Int8Linear` without hooks as its fbgemm call, no module call (~8 us at batch 1)."""
    if type(module) is Int8Linear and not module.on_cuda and x.dtype == torch.float32 \
            and not module._forward_hooks and not module._forward_pre_hooks:
        return torch.ops.quantized.linear_dynamic(x, module._packed, REDUCE_RANGE)
    return module(x)


def _activation(act):
    """``F.gelu`` for Hugging Face's ``GELUActivation`` wrapping exactly it (no module call), else ``act``."""
    return F.gelu if type(act).__name__ == "GELUActivation" and getattr(act, "act", None) is F.gelu else act


def _fused_group(sa: nn.Module):
    """The fused int8 group when query, key and value are its members 0, 1, 2 (in that order), else None."""
    members = (sa.query, sa.key, sa.value)
    if not all(isinstance(m, FusedMember) for m in members):
        return None
    group = members[0].group
    ok = all(m.group is group and m.index == i for i, m in enumerate(members)) and len(group.sizes) == 3
    return group if ok else None


def _add_norm(y: torch.Tensor, residual: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(y + residual, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
