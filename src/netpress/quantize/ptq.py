"""Post-training quantization (weights + activations, e.g. W8A8 / W4A8) and quantization-aware training setup.

Example:
    >>> net = ptq(net, data, PTQHparams(w_bits=8, a_bits=8, bias_correction=True))
    >>> net = prepare_qat(net, QATHparams(w_bits=4, a_bits=8), data); train(net, data, TrainingHparams(steps="1ep"))
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.quantize.activations import (add_activation_quantizers, calibrate_activations, calibration_inputs,
                                           float_input_layers)
from netpress.quantize.base import quantizer_of, remove_quantizer, selected_tensors
from netpress.quantize.calibration import CALIBRATORS
from netpress.quantize.uniform import GRANULARITIES, UniformQAT, UniformSpec, check_tensor, quantize_weights


@dataclasses.dataclass(frozen=True)
class PTQHparams(Hparams):
    """Post-training quantization.

    Attributes:
        w_bits: weight bits (1-16), symmetric signed.
        a_bits: activation bits (1-16), asymmetric unsigned per tensor; 0 = weights only.
        w_granularity: ``tensor`` or ``channel`` (output channels).
        w_calibration: weight calibrator.
        a_calibration: activation calibrator.
        a_mode: ``static`` (calibrated once) or ``dynamic`` (per batch).
        calibration_examples: examples run for static calibration (and bias correction).
        bias_correction: subtract each layer's expected output shift E[(W_q - W) x] from its bias.
    """

    w_bits: int = 8
    a_bits: int = 8
    w_granularity: str = "channel"
    w_calibration: str = "minmax"
    a_calibration: str = "minmax"
    a_mode: str = "static"
    calibration_examples: int = 1024
    bias_correction: bool = False

    def validate(self) -> None:
        require(isinstance(self.w_bits, int) and 1 <= self.w_bits <= 16, f"w_bits must be 1-16, got {self.w_bits!r}")
        require(isinstance(self.a_bits, int) and 0 <= self.a_bits <= 16, f"a_bits must be 0 (off) or 1-16, got {self.a_bits!r}")
        require(self.w_granularity in ("tensor", "channel"), f"w_granularity must be tensor or channel")
        for c in (self.w_calibration, self.a_calibration):
            require(c in CALIBRATORS, f"unknown calibration {c!r}; known: {', '.join(CALIBRATORS.names())}")
        require(self.a_mode in ("static", "dynamic"), f"a_mode must be static or dynamic, got {self.a_mode!r}")
        require(self.calibration_examples >= 1, "calibration_examples must be >= 1")

    def weight_spec(self) -> UniformSpec:
        return UniformSpec(bits=self.w_bits, granularity=self.w_granularity, calibration=self.w_calibration)

    def activation_spec(self) -> UniformSpec:
        return UniformSpec(bits=self.a_bits, symmetric=False, signed=False, calibration=self.a_calibration)


def ptq(model: nn.Module, data=None, hp: PTQHparams = PTQHparams(), *, names: Iterable[str] | None = None,
        exclude: Iterable[str] = ()) -> nn.Module:
    """Quantize weights to frozen codes and fake-quantize the input of every quantized layer.

    Args:
        model: any module, changed in place.
        data: :class:`~netpress.data.DataSplits` (its ``train`` split calibrates) or a Dataset; needed for static
            activations and bias correction.
        hp: :class:`PTQHparams`.
        names: weights to quantize (default: every Linear/Conv weight).
        exclude: weights to leave in float.

    Returns:
        ``model``.

    Raises:
        ConfigError: calibration needed but no data; NaN/Inf weights; before any change.

    Example:
        >>> ptq(net, data, PTQHparams(w_bits=4, a_bits=8))
    """
    calib = getattr(data, "train", data)
    needs_data = hp.bias_correction or (hp.a_bits > 0 and hp.a_mode == "static")
    if needs_data and (calib is None or len(calib) == 0):
        raise ConfigError("PTQ with static activations or bias correction needs calibration data")
    tensors = selected_tensors(model, names, exclude)
    for name, (m, a) in tensors.items():
        check_tensor(name, getattr(m, a).detach(), hp.weight_spec())
    floats = {n: getattr(m, a).detach().clone() for n, (m, a) in tensors.items()}
    means = input_means(model, tensors, calib, hp.calibration_examples) if hp.bias_correction else {}
    quantize_weights(model, hp.weight_spec(), names=list(tensors))
    if hp.bias_correction:
        correct_biases(tensors, floats, means)
    if hp.a_bits > 0:
        add_activation_quantizers(model, hp.activation_spec(), hp.a_mode, float_input_layers(model, tensors))
        calibrate_activations(model, calib, hp.calibration_examples)
    return model


@torch.no_grad()
def input_means(model: nn.Module, tensors: dict, data, examples: int) -> dict[str, torch.Tensor]:
    """Mean input of each layer (per input feature / channel) over ``examples`` calibration inputs."""
    sums, counts, handles = {}, {}, []

    def hook_for(name):
        def hook(module, args):
            x = args[0].detach().float()
            per_feature = x.movedim(1, -1).reshape(-1, x.shape[1]) if x.dim() > 2 else x
            sums[name] = sums.get(name, 0) + per_feature.sum(0)
            counts[name] = counts.get(name, 0) + per_feature.shape[0]
        return hook

    for name, (module, _attr) in tensors.items():
        handles.append(module.register_forward_pre_hook(hook_for(name)))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for x in calibration_inputs(data, examples):
            model(x.to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {n: sums[n] / counts[n] for n in sums}


@torch.no_grad()
def correct_biases(tensors: dict, floats: dict[str, torch.Tensor], means: dict[str, torch.Tensor]) -> None:
    """bias -= (W_q - W) E[x] (summed over kernel positions for convolutions)."""
    for name, (module, attr) in tensors.items():
        bias = getattr(module, "bias", None)
        if bias is None or name not in means:
            continue
        delta_w = getattr(module, attr).detach() - floats[name]
        if delta_w.dim() > 2:
            delta_w = delta_w.sum(dim=tuple(range(2, delta_w.dim())))
        bias.sub_(delta_w @ means[name].to(delta_w))


@dataclasses.dataclass(frozen=True)
class QATHparams(Hparams):
    """Quantization-aware training setup.

    Attributes:
        w_bits: weight bits (1-16).
        a_bits: activation bits (0 = float activations).
        granularity: weight granularity ``tensor`` / ``channel``.
        calibration: weight calibrator (re-run each step unless ``lsq``).
        ste: ``clipped`` (zero gradient outside the clipping range) or ``identity``.
        lsq: learn the weight scales (LSQ).
        calibration_examples: examples for the static activation ranges.
    """

    w_bits: int = 4
    a_bits: int = 8
    granularity: str = "channel"
    calibration: str = "minmax"
    ste: str = "clipped"
    lsq: bool = False
    calibration_examples: int = 1024

    def validate(self) -> None:
        require(isinstance(self.w_bits, int) and 1 <= self.w_bits <= 16, f"w_bits must be 1-16, got {self.w_bits!r}")
        require(isinstance(self.a_bits, int) and 0 <= self.a_bits <= 16, f"a_bits must be 0 or 1-16, got {self.a_bits!r}")
        require(self.granularity in GRANULARITIES[:2], "granularity must be tensor or channel")
        require(self.calibration in CALIBRATORS, f"unknown calibration {self.calibration!r}")
        require(self.ste in ("clipped", "identity"), f"ste must be clipped or identity, got {self.ste!r}")


def prepare_qat(model: nn.Module, hp: QATHparams = QATHparams(), data=None, *, names: Iterable[str] | None = None,
                exclude: Iterable[str] = ()) -> nn.Module:
    """Attach trainable fake-quantizers (STE) to weights and static activation quantizers; then train normally.

    Args:
        model: any module, changed in place (masked models keep their masks under the quantizer).
        hp: :class:`QATHparams`.
        data: DataSplits or Dataset for activation calibration (required when ``a_bits > 0``).
        names: weights to quantize (default: every Linear/Conv weight).
        exclude: weights to leave in float.

    Returns:
        ``model``; train it with :func:`netpress.train.train`, then :func:`~netpress.quantize.export_codes`.

    Example:
        >>> prepare_qat(net, QATHparams(w_bits=4, a_bits=8, lsq=True), data)
    """
    from torch.nn.utils import parametrize

    calib = getattr(data, "train", data)
    if hp.a_bits > 0 and (calib is None or len(calib) == 0):
        raise ConfigError("QAT with quantized activations needs calibration data")
    spec = UniformSpec(bits=hp.w_bits, granularity=hp.granularity, calibration=hp.calibration)
    tensors = selected_tensors(model, names, exclude)
    for name, (m, a) in tensors.items():
        check_tensor(name, getattr(m, a).detach(), spec)
    for module, attr in tensors.values():
        if quantizer_of(module, attr) is not None:
            remove_quantizer(module, attr)
        w = getattr(module, attr).detach()
        parametrize.register_parametrization(module, attr, UniformQAT(w, spec, hp.ste, hp.lsq))
    if hp.a_bits > 0:
        a_spec = UniformSpec(bits=hp.a_bits, symmetric=False, signed=False)
        add_activation_quantizers(model, a_spec, "static", float_input_layers(model, tensors))
        calibrate_activations(model, calib, hp.calibration_examples)
    return model
