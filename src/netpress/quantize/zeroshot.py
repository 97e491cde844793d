"""Zero-shot (data-free) post-training quantization: calibrate on synthesized inputs, never on data.

Two synthesis objectives (``ZeroShotHparams.objective``; ``auto`` picks ``bn`` when the model has BatchNorm
layers with running statistics, else ``inversion``):

* ``bn`` (ZeroQ, Cai et al. 2020): random inputs are optimised so that the batch statistics entering every
  BatchNorm layer match the layer's running mean and variance (the "distilled data").
* ``inversion`` (model inversion, as in DeepInversion's output term, Yin et al. 2020, for models without
  BatchNorm such as LeNet-5): input ``i`` is optimised so the model assigns it class ``i mod C`` with high
  confidence (cross-entropy), under two image priors that keep it in the range of natural inputs: a mean
  total-variation term (neighbouring pixels alike) and a mean-square term (inputs near the data's
  standardised scale). The targets are balanced over the classes, so every class's activation paths are seen.

PTQ then calibrates its activation ranges (and bias correction) on those inputs alone, so no training or
calibration data is ever read.

Example:
    >>> zeroshot_ptq(net, input_shape=(1, 28, 28), hp=PTQHparams(w_bits=8, a_bits=8))
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.modes import eval_mode
from netpress.quantize.ptq import PTQHparams, ptq
from netpress.train.evaluate import output_width

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
OBJECTIVES = ("auto", "bn", "inversion")


@dataclasses.dataclass(frozen=True)
class ZeroShotHparams(Hparams):
    """Synthesis of calibration inputs without data.

    Attributes:
        examples: synthetic inputs to make.
        batch_size: inputs optimised together (``bn``: their joint statistics are matched).
        iterations: Adam steps per batch.
        lr: Adam learning rate on the inputs.
        seed: seed of the initial noise.
        objective: ``auto`` (``bn`` if the model has BatchNorm running statistics, else ``inversion``),
            ``bn`` (ZeroQ statistics matching) or ``inversion`` (confident balanced classes + image priors).
        tv_weight: inversion: weight of the mean total-variation prior.
        l2_weight: inversion: weight of the mean-square prior.
        input_range: ``(low, high)`` bounds of a valid input (e.g. the normalised pixel range, from the
            dataset's normalisation constants, not its data): every Adam step is projected into it; None = free.
    """

    examples: int = 256
    batch_size: int = 64
    iterations: int = 200
    lr: float = 0.1
    seed: int = 0
    objective: str = "auto"
    tv_weight: float = 0.05
    l2_weight: float = 0.01
    input_range: tuple | None = None

    def validate(self) -> None:
        require(self.examples >= 1, f"examples must be >= 1, got {self.examples}")
        require(self.batch_size >= 2, f"batch_size must be >= 2 (batch statistics), got {self.batch_size}")
        require(self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.objective in OBJECTIVES,
                f"unknown zero-shot objective {self.objective!r}; known: {', '.join(OBJECTIVES)}")
        require(self.tv_weight >= 0 and self.l2_weight >= 0,
                f"tv_weight and l2_weight must be >= 0, got {self.tv_weight} and {self.l2_weight}")
        require(self.input_range is None or (len(self.input_range) == 2 and self.input_range[0] < self.input_range[1]),
                f"input_range must be (low, high) with low < high, got {self.input_range!r}")


class SyntheticSet(torch.utils.data.Dataset):
    """In-memory inputs with dummy labels, readable by :func:`~netpress.quantize.calibrate_activations`."""

    def __init__(self, x: torch.Tensor):
        self.x = x
        self.y = torch.zeros(len(x), dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def batchnorm_layers(model: nn.Module) -> dict[str, nn.Module]:
    """BatchNorm layers that track running statistics, by name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, _BN) and m.running_mean is not None}


def bn_statistics_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ZeroQ's loss: ``sum_l ||mean_l(x) - running_mean_l||_2 + ||std_l(x) - sqrt(running_var_l)||_2``.

    Args:
        model: a model with BatchNorm layers; run in eval mode (running statistics untouched).
        x: an input batch.

    Returns:
        The scalar loss (differentiable in ``x``).

    Raises:
        ConfigError: the model has no BatchNorm layer with running statistics.

    Example:
        >>> bn_statistics_loss(net.eval(), torch.randn(8, 1, 28, 28))
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise ConfigError("zero-shot quantization needs BatchNorm layers with running statistics; "
                          "this model has none (calibrate with real data instead)")
    terms, handles = [], []

    def hook(module, args):
        h = args[0]
        dims = [d for d in range(h.dim()) if d != 1]
        mean, var = h.mean(dim=dims), h.var(dim=dims, unbiased=False)
        terms.append(torch.linalg.vector_norm(mean - module.running_mean)
                     + torch.linalg.vector_norm((var + module.eps).sqrt() - (module.running_var + module.eps).sqrt()))

    for m in layers.values():
        handles.append(m.register_forward_pre_hook(hook))
    try:
        with eval_mode(model):
            model(x)
    finally:
        for h in handles:
            h.remove()
    return torch.stack(terms).sum()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring entries along each spatial axis (axes 2 and up), summed
    over the axes; 0 for inputs without spatial axes.

    Example:
        >>> float(total_variation(torch.tensor([[[0.0, 1.0, 1.0]]])))
        0.5
    """
    terms = [x.diff(dim=d).abs().mean() for d in range(2, x.dim()) if x.shape[d] > 1]
    return torch.stack(terms).sum() if terms else x.new_zeros(())


def inversion_loss(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, tv_weight: float = 0.05,
                   l2_weight: float = 0.01) -> torch.Tensor:
    """Model-inversion objective: ``CE(model(x), targets) + tv_weight * TV(x) + l2_weight * mean(x**2)``.

    Args:
        model: any classifier; run in eval mode (nothing in it changes).
        x: an input batch.
        targets: the class each input should be assigned, ``[len(x)]`` int64.
        tv_weight: weight of :func:`total_variation`.
        l2_weight: weight of the mean square of ``x``.

    Returns:
        The scalar loss (differentiable in ``x``).

    Example:
        >>> inversion_loss(net, torch.randn(10, 1, 28, 28), torch.arange(10))
    """
    with eval_mode(model):
        ce = nn.functional.cross_entropy(model(x), targets)
    return ce + tv_weight * total_variation(x) + l2_weight * x.pow(2).mean()


def resolve_objective(model: nn.Module, hp: ZeroShotHparams) -> str:
    """The objective ``hp`` picks for ``model``: ``bn`` or ``inversion`` (``auto``: ``bn`` iff BatchNorm layers
    with running statistics exist).

    Raises:
        ConfigError: ``bn`` asked for on a model without BatchNorm running statistics.

    Example:
        >>> resolve_objective(build_model("lenet5", (1, 28, 28), 10), ZeroShotHparams())
        'inversion'
    """
    has_bn = bool(batchnorm_layers(model))
    if hp.objective == "bn" and not has_bn:
        bn_statistics_loss(model, torch.empty(0))  # raises the ConfigError
    if hp.objective == "auto":
        return "bn" if has_bn else "inversion"
    return hp.objective


def synthesis_loss(model: nn.Module, objective: str, hp: ZeroShotHparams):
    """``loss(x, targets)`` of the resolved ``objective`` (``bn`` ignores the targets)."""
    if objective == "bn":
        return lambda x, targets: bn_statistics_loss(model, x)
    return lambda x, targets: inversion_loss(model, x, targets, hp.tv_weight, hp.l2_weight)


def synthesize_inputs(model: nn.Module, input_shape: Sequence[int], hp: ZeroShotHparams = ZeroShotHparams()
                      ) -> torch.Tensor:
    """Inputs synthesized from the model alone (no data read): BatchNorm statistics matching or model inversion.

    Args:
        model: a trained model (not changed; parameters' ``.grad`` untouched).
        input_shape: one input's shape, e.g. ``(1, 28, 28)``.
        hp: :class:`ZeroShotHparams` (``objective`` picks the loss).

    Returns:
        ``[hp.examples, *input_shape]`` float inputs; for ``inversion`` input ``i`` targets class ``i mod C``.

    Raises:
        ConfigError: ``objective='bn'`` on a model without BatchNorm; checked before any work.

    Example:
        >>> x = synthesize_inputs(net, (1, 28, 28), ZeroShotHparams(examples=64, input_range=input_range("mnist")))
    """
    objective = resolve_objective(model, hp)
    loss_fn = synthesis_loss(model, objective, hp)
    classes = output_width(model, tuple(input_shape)) if objective == "inversion" else 1
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(hp.seed)
    out = []
    for start in range(0, hp.examples, hp.batch_size):
        n = max(2, min(hp.batch_size, hp.examples - start))
        targets = (torch.arange(start, start + n) % classes).to(device)
        x = _project(torch.randn(n, *input_shape, generator=gen).to(device), hp.input_range).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=hp.lr)
        for _ in range(hp.iterations):
            (grad,) = torch.autograd.grad(loss_fn(x, targets), [x])  # parameters' .grad untouched
            opt.zero_grad(set_to_none=True)
            x.grad = grad
            opt.step()
            with torch.no_grad():
                _project(x, hp.input_range)
        out.append(x.detach()[: hp.examples - start])
    return torch.cat(out)


def _project(x: torch.Tensor, bounds: tuple | None) -> torch.Tensor:
    """``x`` clamped in place into ``bounds`` (unchanged when None)."""
    return x if bounds is None else x.clamp_(float(bounds[0]), float(bounds[1]))


def zeroshot_ptq(model: nn.Module, input_shape: Sequence[int], hp: PTQHparams = PTQHparams(),
                 zs: ZeroShotHparams = ZeroShotHparams(), **ptq_kwargs) -> nn.Module:
    """Data-free PTQ: synthesize inputs (:func:`synthesize_inputs`), then :func:`~netpress.quantize.ptq` on them.

    Args:
        model: a trained model, changed in place.
        input_shape: one input's shape.
        hp: :class:`~netpress.quantize.PTQHparams` (``calibration_examples`` is capped at ``zs.examples``).
        zs: :class:`ZeroShotHparams`.
        **ptq_kwargs: ``names`` / ``exclude`` for :func:`~netpress.quantize.ptq`.

    Returns:
        ``model``, quantized and calibrated on synthetic inputs only.

    Raises:
        ConfigError: ``objective='bn'`` without BatchNorm layers (before any change).

    Example:
        >>> zeroshot_ptq(net, (3, 32, 32), PTQHparams(w_bits=4, a_bits=8), ZeroShotHparams(iterations=100))
    """
    x = synthesize_inputs(model, input_shape, zs)
    return ptq(model, SyntheticSet(x.cpu()), hp, **ptq_kwargs)
