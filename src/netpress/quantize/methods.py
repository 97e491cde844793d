"""One entry point over every quantization method, with typed options and the size of the result.

Methods (registry :data:`METHODS`): ``kmeans`` (weight sharing, optional centroid fine-tuning), ``uniform``
(post-training uniform weights), ``ptq`` (weights and activations), ``qat``, ``binary``, ``ternary`` (trained
after quantizing), ``mixed`` (bits per layer under a size budget), ``ecsq`` (entropy-constrained levels) and
``soft-sharing`` (a Gaussian-mixture prior learned with the weights, then merged and quantized).

Example:
    >>> hp = QuantizeHparams(method="uniform", bits=4, granularity="channel", calibration="mse")
    >>> extra = quantize_model(net, hp, data)
    >>> rows, total = size_table(export_codes(net))
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.quantize.base import check_bits, selected_tensors
from netpress.quantize.binary import binarize, ternarize
from netpress.quantize.codes import Codes
from netpress.quantize.mixed import allocate_bits, apply_plan, bit_sensitivity
from netpress.quantize.ptq import PTQHparams, QATHparams, prepare_qat, ptq
from netpress.quantize.sharing import FinetuneHparams, SharingHparams, finetune_centroids, share_weights
from netpress.quantize.uniform import UniformSpec, check_tensor, quantize_weights
from netpress.quantize.zeroshot import ZeroShotHparams, zeroshot_ptq
from netpress.registry import Registry

Method = Callable[[nn.Module, "QuantizeHparams", object, str], dict]
METHODS: Registry[Method] = Registry("quantization method")


@dataclasses.dataclass(frozen=True)
class QuantizeHparams(Hparams):
    """Options of :func:`quantize_model`; each method reads the fields it needs.

    Attributes:
        method: ``kmeans``, ``uniform``, ``ptq``, ``qat``, ``binary``, ``ternary``, ``mixed``, ``ecsq`` or
            ``soft-sharing``.
        bits: bits per weight (kmeans, uniform, ecsq; soft-sharing: a prior of ``2**bits`` components), 1-16.
        init: k-means centroid init (``linear``, ``forgy``, ``density``).
        finetune: fine-tuning length after quantizing (``'2ep'``; kmeans: centroids; qat/binary/ternary: training,
            default ``'1ep'``); ``''`` for none.
        finetune_lr: its learning rate; 0 = the method's default (1e-4 for kmeans, else 1e-3).
        granularity, axis, group_size, calibration, asymmetric: the uniform quantizer (:class:`UniformSpec`).
        w_bits, a_bits, a_mode, bias_correction, lsq: ptq / qat.
        zero_shot: ptq: calibrate on inputs synthesized from the model (:mod:`netpress.quantize.zeroshot`:
            BatchNorm statistics, or model inversion without BatchNorm); no data is read for calibration.
        quant_noise: qat: Quant-Noise rate p in (0, 1] (a random fraction p of weights quantized per step); 0 = off.
        budget_bytes: mixed: size budget of the quantized weights (> 0).
        lam: ecsq: rate weight relative to each tensor's weight variance (0 = k-means), >= 0.
        tau: soft-sharing: weight of the prior's negative log-likelihood per training example, >= 0.
        select: tensor selectors (:mod:`netpress.select`: types, globs, ``re:``, ``!pattern``); default:
            Linear, Conv and Embedding weights.
        exclude: plain tensor names left in float.
    """

    method: str = "kmeans"
    bits: int = 5
    init: str = "linear"
    finetune: str = ""
    finetune_lr: float = 0.0
    granularity: str = "tensor"
    axis: int = 0
    group_size: int = 0
    calibration: str = "minmax"
    asymmetric: bool = False
    w_bits: int = 8
    a_bits: int = 8
    a_mode: str = "static"
    bias_correction: bool = False
    lsq: bool = False
    budget_bytes: float = 0.0
    select: tuple = ()
    exclude: tuple = ()
    zero_shot: bool = False
    quant_noise: float = 0.0
    lam: float = 0.0
    tau: float = 5e-3

    def validate(self) -> None:
        require(self.method in METHODS, f"unknown method {self.method!r}; known: {', '.join(METHODS.names())}")
        require(not self.zero_shot or self.method == "ptq", f"zero-shot calibration is for method 'ptq', not {self.method!r}")
        require(not self.quant_noise or self.method == "qat", f"quant-noise is for method 'qat', not {self.method!r}")
        require(self.method != "mixed" or self.budget_bytes > 0, "method 'mixed' needs a size budget: budget_bytes > 0")
        require(0 <= self.lam < float("inf"), f"lam must be >= 0 and finite, got {self.lam}")
        require(0 <= self.tau < float("inf"), f"tau must be >= 0 and finite, got {self.tau}")
        self.parts()

    def parts(self) -> dict[str, Hparams]:
        """The typed options of the chosen method (each validated): ``sharing``, ``spec``, ``ptq``, ``zeroshot``,
        ``qat``, ``finetune``."""
        out: dict[str, Hparams] = {}
        if self.method in ("ecsq", "soft-sharing"):
            check_bits(self.bits)
        if self.method == "kmeans":
            out["sharing"] = SharingHparams(bits=check_bits(self.bits), init=self.init)
        elif self.method == "uniform":
            out["spec"] = UniformSpec(bits=check_bits(self.bits), symmetric=not self.asymmetric,
                                      granularity=self.granularity, axis=self.axis, group_size=self.group_size,
                                      calibration=self.calibration)
        elif self.method == "ptq":
            out["ptq"] = PTQHparams(w_bits=self.w_bits, a_bits=self.a_bits, w_calibration=self.calibration,
                                    a_mode=self.a_mode, bias_correction=self.bias_correction)
            if self.zero_shot:
                out["zeroshot"] = ZeroShotHparams()
        elif self.method == "qat":
            out["qat"] = QATHparams(w_bits=self.w_bits, a_bits=self.a_bits, calibration=self.calibration, lsq=self.lsq,
                                    quant_noise=self.quant_noise)
        if self.finetune or self.method in ("qat", "binary", "ternary", "soft-sharing"):
            lr = self.finetune_lr or (1e-4 if self.method in ("kmeans", "ecsq") else 1e-3)
            out["finetune"] = FinetuneHparams(steps=self.finetune or "1ep", lr=lr)
        return out


def check_quantize(model: nn.Module, hp: QuantizeHparams) -> None:
    """The checks that need the architecture (tensor names, axes, group sizes, k versus tensor size), on any model
    of it (an untrained one will do), so a bad option fails before a dense model is trained.

    Raises:
        ConfigError: naming the tensor and the problem.

    Example:
        >>> check_quantize(build_model(hp, (1, 28, 28), 10), QuantizeHparams(method="uniform", axis=3))
    """
    tensors = selected_tensors(model, hp.select or None, hp.exclude)
    parts = hp.parts()
    for name, (module, attr) in tensors.items():
        w = getattr(module, attr).detach()
        if "spec" in parts:
            check_tensor(name, w, parts["spec"])
        if "sharing" in parts and 2 ** parts["sharing"].bits > w.numel():
            raise ConfigError(f"{name}: k={2 ** parts['sharing'].bits} shared values but only {w.numel()} weights; "
                              "use fewer bits or exclude it")


def quantize_model(model: nn.Module, hp: QuantizeHparams, data=None, device: str = "auto") -> dict:
    """Quantize ``model`` in place with ``hp.method``.

    Args:
        model: any module with Linear/Conv weights.
        hp: the method and its options (validated on construction).
        data: :class:`~netpress.data.DataSplits` for methods that calibrate or train (all but kmeans without
            fine-tuning, uniform, binary/ternary need it); zero-shot ptq reads only its ``input_shape`` and
            ``name`` (the valid input range of a known dataset bounds the synthesized inputs).
        device: training device.

    Returns:
        Extra result fields: ``before_finetune_accuracy`` (kmeans with fine-tuning), ``plan`` (mixed: one row per
        layer).

    Example:
        >>> quantize_model(net, QuantizeHparams(method="kmeans", bits=4, finetune="1ep"), data)
    """
    return METHODS.get(hp.method)(model, hp, data, device)


@METHODS.register("kmeans")
def _kmeans(model, hp, data, device) -> dict:
    sharing, ft = hp.parts()["sharing"], hp.parts().get("finetune")
    share_weights(model, sharing.bits, init=sharing.init, names=hp.select or None, exclude=hp.exclude)
    if not ft:
        return {}
    from netpress.train import evaluate

    before = evaluate(model, data.test).accuracy
    finetune_centroids(model, data, ft, device=device)
    return {"before_finetune_accuracy": before}


@METHODS.register("ecsq")
def _ecsq(model, hp, data, device) -> dict:
    """Entropy-constrained levels per tensor, the rate weight scaled by each tensor's nonzero-weight variance."""
    from netpress.quantize.ecsq import ecsq_weights

    ecsq_weights(model, hp.bits, hp.lam, names=hp.select or None, exclude=hp.exclude, relative=True)
    ft = hp.parts().get("finetune")
    if ft:
        finetune_centroids(model, data, ft, device=device)
    return {}


@METHODS.register("soft-sharing")
def _soft_sharing(model, hp, data, device) -> dict:
    """Train with a ``2**bits``-component mixture prior (one component fixed at zero), then merge and quantize."""
    from netpress.quantize.soft_sharing import GaussianMixturePrior, flat_weights, merge_and_quantize, \
        soft_sharing_train
    from netpress.train import TrainingHparams

    names = list(selected_tensors(model, hp.select or None, hp.exclude))
    prior = GaussianMixturePrior.from_weights(flat_weights(model, names).detach(), components=2 ** hp.bits)
    ft = hp.parts()["finetune"]
    soft_sharing_train(model, data, prior, TrainingHparams(optimizer="adam", lr=ft.lr, steps=ft.steps,
                                                           eval_every=ft.steps), tau=hp.tau, names=names,
                       device=device)
    merge_and_quantize(model, prior, names=names)
    return {"components": int(prior.all_means().numel())}


@METHODS.register("uniform")
def _uniform(model, hp, data, device) -> dict:
    quantize_weights(model, hp.parts()["spec"], names=hp.select or None, exclude=hp.exclude)
    return {}


@METHODS.register("ptq")
def _ptq(model, hp, data, device) -> dict:
    parts = hp.parts()
    if "zeroshot" in parts:  # synthesized inputs: only the input shape and the dataset's name of ``data`` are read
        from netpress.data import input_range

        zs = parts["zeroshot"].replace(input_range=input_range(getattr(data, "name", "")))
        zeroshot_ptq(model, data.input_shape, parts["ptq"], zs, names=hp.select or None, exclude=hp.exclude)
        return {"calibration": "zero-shot"}
    ptq(model, data, parts["ptq"], names=hp.select or None, exclude=hp.exclude)
    return {}


@METHODS.register("mixed")
def _mixed(model, hp, data, device) -> dict:
    plan = allocate_bits(bit_sensitivity(model, data), hp.budget_bytes)
    apply_plan(model, plan)
    return {"plan": plan.rows}


def _trained(prepare: Callable[[nn.Module, QuantizeHparams, object], None]) -> Method:
    """A method that quantizes, then trains the quantized model (Adam, ``finetune`` steps)."""

    def method(model, hp, data, device) -> dict:
        from netpress.train import TrainingHparams, train

        prepare(model, hp, data)
        ft = hp.parts()["finetune"]
        train(model, data, TrainingHparams(optimizer="adam", lr=ft.lr, steps=ft.steps, eval_every=ft.steps),
              device=device)
        return {}

    return method


METHODS.register("qat", _trained(lambda m, hp, data: prepare_qat(m, hp.parts()["qat"], data, names=hp.select or None, exclude=hp.exclude)))
METHODS.register("binary", _trained(lambda m, hp, data: binarize(m, names=hp.select or None, exclude=hp.exclude)))
METHODS.register("ternary", _trained(lambda m, hp, data: ternarize(m, names=hp.select or None, exclude=hp.exclude)))


def codes_bytes(codes: Codes) -> float:
    """Storage of one tensor with fixed-length indices, plus what its codebook really costs: k floats (k-means);
    a scale and zero point per channel / group (affine uniform codes); one scale per channel (binary, ternary)."""
    if codes.affine:
        return codes.indices.numel() * codes.bits / 8 + 8 * codes.scale.numel()
    tables = codes.codebook.shape[0] if codes.codebook.dim() == 2 else 1
    book = {"uniform": 8 * tables, "binary": 4 * tables, "ternary": 4 * tables}.get(codes.method,
                                                                                  4 * codes.codebook.numel())
    if codes.method == "uniform" and codes.axis is None and codes.codebook.numel() != 2 ** codes.bits:
        book = 4 * codes.codebook.numel()
    return codes.indices.numel() * codes.bits / 8 + book


def size_table(codes: dict[str, Codes]) -> tuple[list[dict], dict]:
    """Per-tensor sizes of quantized weights (fixed-length indices) and the totals against float32.

    Args:
        codes: ``{name: Codes}``, e.g. from :func:`~netpress.quantize.export_codes`.

    Returns:
        ``(rows, totals)``: rows with layer, params, bits, codebook, bytes, method; totals with ``bytes``,
        ``float_bytes`` and ``ratio``.

    Example:
        >>> rows, total = size_table(export_codes(share_weights(net, 4)))
        >>> total["ratio"] > 7
        True
    """
    rows = [{"layer": name, "params": c.indices.numel(), "bits": c.bits, "codebook": 0 if c.affine else c.codebook.numel(),
             "bytes": codes_bytes(c), "method": c.method} for name, c in codes.items()]
    total = sum(r["bytes"] for r in rows)
    float_bytes = sum(r["params"] * 4 for r in rows)
    return rows, {"bytes": total, "float_bytes": float_bytes, "ratio": float_bytes / max(total, 1)}
