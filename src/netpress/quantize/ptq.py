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
from netpress.modes import eval_mode
from netpress.quantize.activations import (add_activation_quantizers, calibrate_activations, calibration_inputs,
                                           float_input_layers)
from netpress.quantize.base import quantizer_of, remove_quantizer, selected_tensors
from netpress.quantize.calibration import CALIBRATORS
from netpress.quantize.uniform import GRANULARITIES, UniformQAT, UniformSpec, check_tensor, quantize_weights
from netpress.select import type_matches


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
        names: weights to quantize (names, patterns or a Selector; default: Linear, Conv, Embedding weights).
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
    corrected = ({n: ma for n, ma in tensors.items() if _has_bias(ma[0]) and ma[1] == "weight"}
                 if hp.bias_correction else {})
    floats = {n: getattr(m, a).detach().clone() for n, (m, a) in corrected.items()}
    means = input_means(model, corrected, calib, hp.calibration_examples) if corrected else {}
    for name, (module, _attr) in corrected.items():  # validate every shape before anything changes
        bias_shift(module, torch.zeros_like(floats[name]), means[name], name)
    quantize_weights(model, hp.weight_spec(), names=list(tensors))
    if corrected:
        correct_biases(corrected, floats, means)
    if hp.a_bits > 0:
        add_activation_quantizers(model, hp.activation_spec(), hp.a_mode, float_input_layers(model, tensors))
        calibrate_activations(model, calib, hp.calibration_examples)
    return model


def _has_bias(module: nn.Module) -> bool:
    return isinstance(getattr(module, "bias", None), torch.Tensor)


def feature_axis(module: nn.Module, ndim: int) -> int:
    """The axis of a layer's input that holds its input features: 1 for convolutions, else the last
    (Linear and HF ``Conv1D`` on ``[batch, ..., features]``, e.g. ``[batch, seq, features]``)."""
    return 1 if type_matches(module, ("conv",)) and ndim > 2 else ndim - 1


@torch.no_grad()
def input_means(model: nn.Module, tensors: dict, data, examples: int) -> dict[str, torch.Tensor]:
    """Mean input of each layer per input feature / channel over ``examples`` calibration inputs (any rank:
    ``[batch, features]``, ``[batch, seq, features]``, ``[batch, channels, *spatial]``)."""
    sums, counts, handles = {}, {}, []

    def hook_for(name):
        def hook(module, args):
            x = args[0].detach().float()
            axis = feature_axis(module, x.dim())
            per_feature = x.movedim(axis, -1).reshape(-1, x.shape[axis])
            sums[name] = sums.get(name, 0) + per_feature.sum(0)
            counts[name] = counts.get(name, 0) + per_feature.shape[0]
        return hook

    for name, (module, _attr) in tensors.items():
        handles.append(module.register_forward_pre_hook(hook_for(name)))
    try:
        with eval_mode(model):
            device = next(model.parameters()).device
            for x in calibration_inputs(data, examples):
                model(x.to(device))
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in tensors if n not in sums]
    if missing:
        raise ConfigError(f"bias correction: {missing[0]} saw no input during calibration")
    return {n: sums[n] / counts[n] for n in sums}


def bias_shift(module: nn.Module, delta_w: torch.Tensor, mean: torch.Tensor, name: str = "layer") -> torch.Tensor:
    """Expected output shift ``E[(W_q - W) x] = delta_w . E[x]`` of one layer, shaped like its bias.

    Linear: ``delta_w @ mean``; HF ``Conv1D`` (weight ``[in, out]``): ``mean @ delta_w``; convolutions: the
    kernel summed over its spatial positions, per group.

    Raises:
        ConfigError: the mean input does not fit the weight (``name`` and both sizes in the message).
    """
    mean = mean.to(delta_w)
    if type_matches(module, ("Conv1D",)):
        fan_in = delta_w.shape[0]
    else:
        groups = getattr(module, "groups", 1) if delta_w.dim() > 2 else 1
        fan_in = delta_w.shape[1] * groups
    if mean.numel() != fan_in:
        raise ConfigError(f"bias correction: {name} takes {fan_in} input features but its calibration input has "
                          f"{mean.numel()} on the feature axis")
    if type_matches(module, ("Conv1D",)):
        return mean @ delta_w
    if delta_w.dim() > 2:
        delta_w = delta_w.sum(dim=tuple(range(2, delta_w.dim())))  # [out, in/groups]
    groups = fan_in // delta_w.shape[1]
    per_group = delta_w.reshape(groups, -1, delta_w.shape[1])          # [g, out/g, in/g]
    return torch.bmm(per_group, mean.reshape(groups, -1, 1)).reshape(-1)


@torch.no_grad()
def correct_biases(tensors: dict, floats: dict[str, torch.Tensor], means: dict[str, torch.Tensor]) -> None:
    """bias -= (W_q - W) E[x] (see :func:`bias_shift`)."""
    for name, (module, attr) in tensors.items():
        bias = getattr(module, "bias", None)
        if bias is None or name not in means:
            continue
        bias.sub_(bias_shift(module, getattr(module, attr).detach() - floats[name], means[name], name))


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
        quant_noise: 0 = every weight fake-quantized each step; p in (0, 1] = Quant-Noise (Fan et al. 2020):
            each step quantizes a random fraction p of the weights (:class:`~netpress.quantize.quant_noise.
            QuantNoiseWeight`, unclipped STE, ranges re-calibrated each step; not with ``lsq``); eval quantizes all.
    """

    w_bits: int = 4
    a_bits: int = 8
    granularity: str = "channel"
    calibration: str = "minmax"
    ste: str = "clipped"
    lsq: bool = False
    calibration_examples: int = 1024
    quant_noise: float = 0.0

    def validate(self) -> None:
        require(isinstance(self.w_bits, int) and 1 <= self.w_bits <= 16, f"w_bits must be 1-16, got {self.w_bits!r}")
        require(isinstance(self.a_bits, int) and 0 <= self.a_bits <= 16, f"a_bits must be 0 or 1-16, got {self.a_bits!r}")
        require(0 <= self.quant_noise <= 1, f"quant_noise must be in [0, 1] (0 = off), got {self.quant_noise}")
        require(not (self.quant_noise and self.lsq), "quant_noise re-calibrates its ranges each step: not with lsq")
        require(self.granularity in GRANULARITIES[:2], "granularity must be tensor or channel")
        require(self.calibration in CALIBRATORS, f"unknown calibration {self.calibration!r}")
        require(self.ste in ("clipped", "identity"), f"ste must be clipped or identity, got {self.ste!r}")


def _qat_quantizer(w: torch.Tensor, spec: UniformSpec, hp: QATHparams) -> nn.Module:
    if hp.quant_noise > 0:
        from netpress.quantize.quant_noise import QuantNoiseWeight

        return QuantNoiseWeight(spec, hp.quant_noise)
    return UniformQAT(w, spec, hp.ste, hp.lsq)


def prepare_qat(model: nn.Module, hp: QATHparams = QATHparams(), data=None, *, names: Iterable[str] | None = None,
                exclude: Iterable[str] = ()) -> nn.Module:
    """Attach trainable fake-quantizers (STE) to weights and static activation quantizers; then train normally.

    Args:
        model: any module, changed in place (masked models keep their masks under the quantizer).
        hp: :class:`QATHparams`.
        data: DataSplits or Dataset for activation calibration (required when ``a_bits > 0``).
        names: weights to quantize (names, patterns or a Selector; default: Linear, Conv, Embedding weights).
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
        parametrize.register_parametrization(module, attr, _qat_quantizer(w, spec, hp))
    if hp.a_bits > 0:
        a_spec = UniformSpec(bits=hp.a_bits, symmetric=False, signed=False)
        add_activation_quantizers(model, a_spec, "static", float_input_layers(model, tensors))
        calibrate_activations(model, calib, hp.calibration_examples)
    return model
