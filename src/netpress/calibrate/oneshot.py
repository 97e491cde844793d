"""One-shot, data-aware compression of a pretrained model: calibration inputs in, compressed model out.

Per layer, in execution order (:func:`netpress.calibrate.sequential.layerwise`): prune (Wanda or SparseGPT), then
quantize (GPTQ: uniform, k-means or ECSQ levels) from the layer's input statistics. SparseGPT followed by uniform
GPTQ runs as one joint sweep (``joint=True``). Layers without an input matrix (e.g. ``nn.Embedding``) are quantized
by round-to-nearest / plain k-means / plain ECSQ and not pruned (no input statistics exist for them); the report
says so.

Example:
    >>> net = oneshot(net, batches, prune=WandaHparams(n=2, m=4), quantize=GPTQHparams(bits=4))
    >>> net.netpress_oneshot["quality"]
    0.0021
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Union

import torch
from torch import nn

from netpress.calibrate.inputs import check_inputs
from netpress.calibrate.quality import QualityFn, make_quality
from netpress.calibrate.sequential import layerwise
from netpress.calibrate.stats import InputStats, supports
from netpress.errors import ConfigError
from netpress.prune.sparsegpt import SparseGPTHparams, sparsegpt_module
from netpress.prune.wanda import WandaHparams, check_cols, wanda_module
from netpress.quantize.gptq import GPTQHparams, UniformRounder, attach_codes, check_weight, gptq_module

Selector = Union[Iterable[str], Callable[[str, nn.Module], bool], None]


def select_layers(model: nn.Module, layers: Selector = None) -> dict[str, tuple[nn.Module, str]]:
    """Tensors to compress by plain name: ``None`` (every Linear/Conv weight), plain names (any module's
    ``weight``, e.g. an embedding), or a predicate ``(module_name, module) -> bool`` over modules with a weight.

    Raises:
        ConfigError: an unknown name, or nothing selected.

    Example:
        >>> select_layers(bert, lambda n, m: isinstance(m, (nn.Linear, nn.Embedding)))
    """
    from netpress.prune.masks import prunable_tensors

    if not callable(layers):
        return prunable_tensors(model, None if layers is None else list(layers))
    out = {f"{n}.weight" if n else "weight": (m, "weight") for n, m in model.named_modules()
           if isinstance(getattr(m, "weight", None), torch.Tensor) and layers(n, m)}
    if not out:
        raise ConfigError("the layer selector matched no module with a weight")
    return out


def oneshot(model: nn.Module, inputs: Iterable[Any], *, prune: WandaHparams | SparseGPTHparams | None = None,
            quantize: GPTQHparams | dict[str, GPTQHparams] | None = None, layers: Selector = None,
            quality: Union[str, QualityFn, None] = None, joint: bool = True, sequential: bool = True,
            dtype: torch.dtype = torch.float32, progress: bool | None = None) -> nn.Module:
    """Compress ``model`` in place from calibration inputs, without training.

    Args:
        model: any module (CPU or CUDA: statistics and solvers run on the model's device).
        inputs: calibration batches: tensors (``model(x)``), tuples (``model(*t)``) or mappings such as tokenizer
            output (``model(**d)``); replayed once per layer group.
        prune: :class:`WandaHparams` or :class:`SparseGPTHparams` (unstructured or N:M), or None.
        quantize: :class:`GPTQHparams` (uniform per channel/group, k-means or ECSQ), ``{tensor: GPTQHparams}`` for
            every selected tensor (mixed precision, e.g. from :func:`netpress.quantize.allocate_bits`), or None.
        layers: which weights (see :func:`select_layers`; default every Linear/Conv weight).
        quality: how the result is scored in the report: ``'mse'`` (default) / ``'cosine'`` against the original
            outputs, or a callable ``model -> float``.
        joint: SparseGPT and uniform GPTQ in one sweep (else prune, then quantize from the same statistics).
        sequential: later layers calibrate on earlier layers' compressed outputs (see
            :mod:`netpress.calibrate.sequential`); False: one pass over the original model.
        dtype: dtype of the input statistics and solvers (float64 for exact references).
        progress: bar over layers (default: when stderr is a terminal).

    Returns:
        ``model``: pruned weights masked (:mod:`netpress.prune.masks`), quantized ones frozen codes
        (:func:`netpress.quantize.export_codes`), ready for :func:`netpress.save`. ``model.netpress_oneshot``
        holds the report: per-layer results and ``quality`` (0 = identical outputs).

    Raises:
        ConfigError: nothing to do, an unknown layer, or a weight the options cannot handle; before any change.
        DataError: no calibration inputs.

    Example:
        >>> oneshot(bert, [tok(texts, return_tensors="pt", padding=True)], quantize=GPTQHparams(bits=4))
    """
    batches = check_inputs(inputs)
    tensors = select_layers(model, layers if layers is not None or not isinstance(quantize, dict) else list(quantize))
    per_tensor = _per_tensor(quantize, tensors)
    _check_options(prune, per_tensor)
    _check_tensors(tensors, prune, per_tensor)
    score = make_quality(model, batches, quality)
    modules = {name: module for name, (module, _attr) in tensors.items()}

    def solve(name: str, module: nn.Module, stats: InputStats | None) -> dict:
        hp = per_tensor.get(name)
        both = joint and isinstance(prune, SparseGPTHparams) and hp is not None and hp.method == "uniform" \
            and not hp.act_order
        return _solve(name, module, tensors[name][1], stats, prune, hp, both)

    need_h = quantize is not None or isinstance(prune, SparseGPTHparams)
    results = layerwise(model, batches, modules, solve, hessian=need_h, dtype=dtype, sequential=sequential,
                        progress=progress)
    model.netpress_oneshot = {"layers": results, "quality": score(model)}
    return model


def _solve(name: str, module: nn.Module, attr: str, stats: InputStats | None, prune, quantize, both: bool) -> dict:
    report: dict[str, Any] = {}
    if prune is not None:
        if stats is None:
            report["prune"] = "skipped: no input statistics for this layer"
        elif isinstance(prune, WandaHparams):
            report.update(wanda_module(module, stats.sq_norms, prune, attr, name))
        else:
            report.update(_sparsegpt(name, module, attr, stats.hessian, prune, quantize if both else None))
    if quantize is not None and not (both and stats is not None):
        report.update(gptq_module(module, None if stats is None else stats.hessian, quantize, attr, name))
        if stats is None:
            report["note"] = "no input statistics: rounded to nearest"
    return report


def _sparsegpt(name: str, module: nn.Module, attr: str, hessian: torch.Tensor, prune: SparseGPTHparams,
               quantize: GPTQHparams | None) -> dict:
    """SparseGPT, jointly with GPTQ rounding of the kept weights when ``quantize`` is given (one sweep)."""
    if quantize is None:
        return sparsegpt_module(module, hessian, prune, attr, name)
    w = getattr(module, attr).detach()
    check_weight(name, w, quantize)
    if quantize.method != "uniform" or quantize.act_order:
        raise ConfigError("joint SparseGPT + quantization needs method='uniform' and act_order=False")
    mat = w.reshape(w.shape[0], -1)
    rounder = UniformRounder(mat.to(hessian.dtype), hessian, quantize, mat != 0)
    report = sparsegpt_module(module, hessian, prune, attr, name, then=rounder)
    new_w = getattr(module, attr).detach()
    attach_codes(module, attr, rounder.codes(new_w.reshape(new_w.shape[0], -1), new_w.shape))
    return report


def _per_tensor(quantize, tensors: dict) -> dict[str, GPTQHparams]:
    """One GPTQHparams per selected tensor (empty without quantization)."""
    if quantize is None:
        return {}
    if not isinstance(quantize, dict):
        return {name: quantize for name in tensors}
    unknown, missing = sorted(set(quantize) - set(tensors)), sorted(set(tensors) - set(quantize))
    if unknown or missing:
        raise ConfigError(f"quantize per tensor: unknown {unknown}, missing {missing}; selected: {list(tensors)}")
    return dict(quantize)


def _check_options(prune, per_tensor: dict) -> None:
    if prune is None and not per_tensor:
        raise ConfigError("oneshot needs prune=WandaHparams/SparseGPTHparams and/or quantize=GPTQHparams")
    if prune is not None and not isinstance(prune, (WandaHparams, SparseGPTHparams)):
        raise ConfigError(f"prune must be WandaHparams or SparseGPTHparams, got {type(prune).__name__}")
    bad = sorted({type(hp).__name__ for hp in per_tensor.values() if not isinstance(hp, GPTQHparams)})
    if bad:
        raise ConfigError(f"quantize must be GPTQHparams, got {', '.join(bad)}")


def _check_tensors(tensors: dict[str, tuple[nn.Module, str]], prune, per_tensor: dict) -> None:
    """Every check that can fail, for every tensor, before anything changes."""
    for name, (module, attr) in tensors.items():
        w = getattr(module, attr)
        if prune is not None and supports(module):
            check_cols(name, w[0].numel(), prune.m)
        if name in per_tensor:
            check_weight(name, w, per_tensor[name])


def layer_hessians(model: nn.Module, inputs: Iterable[Any], layers: Selector = None,
                   dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Input Hessians ``H = 2 X^T X / n`` of the selected Linear/Conv weights, in one pass over the original model
    (e.g. for :func:`netpress.quantize.bit_sensitivity`'s Hessian proxy). Memory: one ``H`` per layer.

    Example:
        >>> sens = bit_sensitivity(net, bits=(2, 4, 8), hessians=layer_hessians(net, batches))
    """
    from netpress.calibrate.stats import capture

    tensors = select_layers(model, layers)
    modules = {name: m for name, (m, _a) in tensors.items() if supports(m)}
    stats = capture(model, check_inputs(inputs), modules, dtype=dtype)
    return {name: s.hessian for name, s in stats.items()}
