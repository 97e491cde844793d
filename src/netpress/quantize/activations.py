"""Activation fake-quantizers (observers): static ranges calibrated over a calibration set, or dynamic per batch.

An :class:`ActivationQuantizer` is attached to a layer as the submodule ``input_quantizer`` and runs as a
forward pre-hook on the layer's input, so parameter names (``fc1.weight``) never change.

Example:
    >>> add_activation_quantizers(net, UniformSpec(bits=8, symmetric=False, signed=False))
    >>> calibrate_activations(net, data.train, examples=1024)
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.utils.data import Dataset

from netpress.errors import ConfigError, NetpressError
from netpress.modes import eval_mode
from netpress.quantize.base import selected_tensors
from netpress.quantize.calibration import CALIBRATORS
from netpress.quantize.uniform import STEFakeQuantize, UniformSpec, qparams
from netpress.select import closest, type_matches

MODES = ("static", "dynamic")
ATTR = "input_quantizer"


class ActivationQuantizer(nn.Module):
    """Per-tensor fake quantization of an activation (clipped STE in training).

    Args:
        spec: the quantizer (per tensor; ``calibration`` picks the range from observed values).
        mode: ``static`` (range fixed after :meth:`observe` + :meth:`freeze`) or ``dynamic`` (range of each batch).
        sample_cap: values kept (a random subset per batch) for non-minmax static calibration.
    """

    def __init__(self, spec: UniformSpec, mode: str = "static", sample_cap: int = 1 << 18):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"unknown activation mode {mode!r}; known: {', '.join(MODES)}")
        self.spec, self.mode, self.sample_cap = spec, mode, sample_cap
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("calibrated", torch.tensor(False))
        self.observing = False
        self._lo, self._hi, self._samples, self._seen = None, None, [], 0

    def observe(self) -> None:
        """Start collecting statistics (inputs pass through unquantized)."""
        self.observing, self._lo, self._hi, self._samples, self._seen = True, None, None, [], 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self._collect(x.detach())
            return x
        if self.mode == "dynamic":
            lo, hi = CALIBRATORS.get(self.spec.calibration)(x.detach().reshape(1, -1).float(), self.spec)
            scale, zp = qparams(lo, hi, self.spec)
        elif not bool(self.calibrated):
            raise NetpressError("static activation quantizer used before calibration (run calibrate_activations)")
        else:
            scale, zp = self.scale, self.zero_point
        return STEFakeQuantize.apply(x, scale.reshape(()), zp.reshape(()), self.spec.qmin, self.spec.qmax, True)

    def _collect(self, x: torch.Tensor) -> None:
        flat = x.reshape(-1).float()
        lo, hi = flat.min(), flat.max()
        self._lo = lo if self._lo is None else torch.minimum(self._lo, lo)
        self._hi = hi if self._hi is None else torch.maximum(self._hi, hi)
        if self.spec.calibration != "minmax":
            keep = min(flat.numel(), max(1, self.sample_cap // 8))
            self._samples.append(flat[torch.randperm(flat.numel())[:keep]].cpu())
        self._seen += 1

    @torch.no_grad()
    def freeze(self) -> None:
        """Fix the range from what :meth:`observe` collected."""
        if self._seen == 0:
            raise NetpressError("activation quantizer saw no data during calibration")
        if self.spec.calibration == "minmax":
            lo, hi = self._lo.reshape(1), self._hi.reshape(1)
        else:
            sample = torch.cat(self._samples)[: self.sample_cap].reshape(1, -1)
            lo, hi = CALIBRATORS.get(self.spec.calibration)(sample, self.spec)
        scale, zp = qparams(lo, hi, self.spec)
        self.scale.copy_(scale.reshape(()))
        self.zero_point.copy_(zp.reshape(()))
        self.calibrated.fill_(True)
        self.observing, self._samples = False, []


def _quantize_input(module: nn.Module, args):
    return (getattr(module, ATTR)(args[0]), *args[1:])


def add_activation_quantizers(model: nn.Module, spec: UniformSpec, mode: str = "static",
                              layers: Iterable[str] | None = None) -> nn.Module:
    """Fake-quantize the input of every Linear/Conv layer (or of the named layers); embeddings are skipped.

    Args:
        model: any module, changed in place.
        spec: per-tensor activation quantizer spec (e.g. 8 bits, asymmetric, unsigned).
        mode: ``static`` (then run :func:`calibrate_activations`) or ``dynamic``.
        layers: module names (default: every Linear/Conv).

    Returns:
        ``model``.

    Example:
        >>> add_activation_quantizers(net, UniformSpec(bits=8, symmetric=False, signed=False), mode="dynamic")
    """
    if spec.granularity != "tensor":
        raise ConfigError("activation quantizers are per tensor")
    modules = dict(model.named_modules())
    names = list(layers) if layers is not None else float_input_layers(model, selected_tensors(model))
    for name in names:
        if name not in modules:
            raise ConfigError(f"no layer named {name!r}; {closest(name, [n for n in modules if n])}")
    for name in names:
        module = modules[name]
        if not hasattr(module, ATTR):
            module.register_forward_pre_hook(_quantize_input)
        setattr(module, ATTR, ActivationQuantizer(spec, mode))
    return model


def float_input_layers(model: nn.Module, tensors: Iterable[str]) -> list[str]:
    """The layers owning ``tensors`` whose input is a float activation (embeddings take integer ids)."""
    modules = dict(model.named_modules())
    layers = dict.fromkeys(n.rpartition(".")[0] for n in tensors)
    return [n for n in layers if n in modules and not type_matches(modules[n], ("embedding",))]


def activation_quantizers(model: nn.Module) -> dict[str, ActivationQuantizer]:
    """The activation quantizers by layer name."""
    return {n: getattr(m, ATTR) for n, m in model.named_modules() if isinstance(getattr(m, ATTR, None), ActivationQuantizer)}


@torch.no_grad()
def calibrate_activations(model: nn.Module, data: Dataset | None, examples: int = 1024, batch_size: int = 256) -> nn.Module:
    """Run ``examples`` inputs of ``data`` through the model and fix every static activation range.

    Raises:
        ConfigError: no data (static calibration needs a calibration set) or ``examples < 1``.
    """
    quantizers = [q for q in activation_quantizers(model).values() if q.mode == "static"]
    if not quantizers:
        return model
    if data is None or len(data) == 0 or examples < 1:
        raise ConfigError("static activation calibration needs data (a calibration set with at least 1 example)")
    device = next(model.parameters()).device
    with eval_mode(model):
        for q in quantizers:
            q.observe()
        for x in calibration_inputs(data, examples, batch_size):
            model(x.to(device))
        for q in quantizers:
            q.freeze()
    return model


def calibration_inputs(data: Dataset, examples: int, batch_size: int = 256):
    """Yield input batches of a fixed random subset of ``examples`` items of ``data`` (seed 0)."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:examples]
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        if hasattr(data, "x"):
            yield data.x[idx]
        else:
            yield torch.stack([torch.as_tensor(data[int(i)][0]) for i in idx]).float()


def remove_activation_quantizers(model: nn.Module, layers: Iterable[str] | None = None) -> nn.Module:
    """Drop every activation quantizer (or those of ``layers``) and its hook."""
    keep = None if layers is None else set(layers)
    for name, module in model.named_modules():
        if keep is not None and name not in keep:
            continue
        if isinstance(getattr(module, ATTR, None), ActivationQuantizer):
            for key, hook in list(module._forward_pre_hooks.items()):
                if hook is _quantize_input:
                    del module._forward_pre_hooks[key]
            delattr(module, ATTR)
    return model
