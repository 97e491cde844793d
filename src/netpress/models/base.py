"""Model registry, initialisers and a spec each built model carries so it can be rebuilt by name."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.hparams import Hparams, require
from netpress.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
INITS: Registry[Callable[[torch.Tensor], Any]] = Registry("init")

INITS.register("kaiming_normal", lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
INITS.register("kaiming_uniform", lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"))
INITS.register("glorot_normal", nn.init.xavier_normal_)
INITS.register("glorot_uniform", nn.init.xavier_uniform_)


@dataclasses.dataclass(frozen=True)
class ModelHparams(Hparams):
    """Which architecture and how it is initialised.

    Attributes:
        name: a registered model (``lenet300``, ``lenet5``, ``conv2``, ``conv4``, ``conv6``).
        init: weight initialiser (``kaiming_normal``, ``kaiming_uniform``, ``glorot_normal``, ``glorot_uniform``).
    """

    name: str = "lenet300"
    init: str = "kaiming_normal"

    def validate(self) -> None:
        require(self.name in MODELS, f"unknown model {self.name!r}; known: {', '.join(MODELS.names())}")
        require(self.init in INITS, f"unknown init {self.init!r}; known: {', '.join(INITS.names())}")


def initialise(model: nn.Module, init: str) -> nn.Module:
    """Apply a registered initialiser to every Linear/Conv weight; biases to zero."""
    fn = INITS.get(init)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            fn(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def build_model(hparams: ModelHparams | str, input_shape: tuple[int, ...], num_classes: int, seed: int | None = None) -> nn.Module:
    """Build a registered model for the given input shape and class count.

    Args:
        hparams: a :class:`ModelHparams` or a model name.
        input_shape: one example's shape, e.g. ``(1, 28, 28)``.
        num_classes: output width.
        seed: if given, the initialisation is a pure function of it.

    Returns:
        The model, with ``netpress_spec`` set so containers can rebuild it.

    Example:
        >>> net = build_model("lenet300", (1, 28, 28), 10, seed=0)
    """
    if isinstance(hparams, str):
        hparams = ModelHparams(name=hparams)
    with torch.random.fork_rng(enabled=seed is not None):  # the caller's random state is left untouched
        if seed is not None:
            torch.manual_seed(seed)
        model = MODELS.get(hparams.name)(input_shape=tuple(input_shape), num_classes=num_classes)
        initialise(model, hparams.init)
    model.netpress_spec = {"name": hparams.name, "input_shape": [int(d) for d in input_shape],
                           "num_classes": int(num_classes)}
    return model


MAX_INPUT_DIM = 1 << 16          # per input dimension
MAX_INPUT_ELEMENTS = 1 << 24     # per example
MAX_CLASSES = 1 << 20


def check_spec(spec: object) -> dict:
    """Validate a ``netpress_spec`` (types and ranges) without building anything.

    Args:
        spec: ``{'name', 'input_shape', 'num_classes'[, 'low_rank']}`` as read from a file or run.

    Returns:
        The spec (unchanged).

    Raises:
        ConfigError: a missing or ill-typed field, an unknown model, sizes out of range.

    Example:
        >>> check_spec({"name": "lenet300", "input_shape": [1, 28, 28], "num_classes": 10})["name"]
        'lenet300'
    """
    _require(isinstance(spec, dict), f"model spec must be an object, got {type(spec).__name__}")
    name, shape, classes, ranks = (spec.get(k) for k in ("name", "input_shape", "num_classes", "low_rank"))
    _require(isinstance(name, str) and name in MODELS,
             f"unknown model {_short(name)}; known: {', '.join(MODELS.names())}")
    _require(isinstance(shape, list) and 1 <= len(shape) <= 4 and all(_is_int(d, 1, MAX_INPUT_DIM) for d in shape),
             f"input_shape must be a list of 1-4 integers in [1, {MAX_INPUT_DIM}], got {_short(shape)}")
    _require(math.prod(shape) <= MAX_INPUT_ELEMENTS, f"input_shape {shape} has more than {MAX_INPUT_ELEMENTS} elements")
    _require(_is_int(classes, 1, MAX_CLASSES),
             f"num_classes must be an integer in [1, {MAX_CLASSES}], got {_short(classes)}")
    _require(ranks is None or (isinstance(ranks, dict) and all(isinstance(k, str) and _is_int(r, 1, 1 << 31)
                                                               for k, r in ranks.items())),
             f"low_rank must map layer names to positive integer ranks, got {_short(ranks)}")
    return spec


def spec_parameters(spec: dict) -> int:
    """Parameters and buffers of the registry model ``spec`` names (before ``low_rank``), counted without
    allocating them (the model is built on the ``meta`` device).

    Raises:
        ConfigError: the spec is invalid or the model cannot be built for that input shape.
    """
    check_spec(spec)
    with torch.device("meta"):
        model = _construct(spec)
    return sum(t.numel() for t in model.state_dict().values())


def check_forward(model: nn.Module, spec: dict) -> None:
    """Run ``model`` on one example of ``spec['input_shape']`` on the ``meta`` device (no compute, no memory) and
    check the output has ``spec['num_classes']`` logits, so layers that do not fit each other fail here.

    Raises:
        ConfigError: the layers do not chain or the output has the wrong width.
    """
    from torch.func import functional_call

    _check_module_shapes(model)
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    meta = {k: torch.empty_like(v, device="meta") for k, v in tensors.items()}  # the model itself is untouched
    try:
        with torch.no_grad():
            out = functional_call(model, meta, (torch.zeros(1, *spec["input_shape"], device="meta"),))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ConfigError(f"the {spec['name']} layers do not fit together: {_one_line(exc)}") from None
    _require(isinstance(out, torch.Tensor) and tuple(out.shape) == (1, spec["num_classes"]),
             f"the {spec['name']} model outputs {tuple(getattr(out, 'shape', ()))}, "
             f"expected (1, {spec['num_classes']})")


def _check_module_shapes(model: nn.Module) -> None:
    """Within each layer, the tensors agree (meta kernels do not check every one, e.g. a conv's bias)."""
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and m.bias is not None:
            _require(tuple(m.bias.shape) == (m.weight.shape[0],),
                     f"layer {name}: bias {tuple(m.bias.shape)} does not fit weight {tuple(m.weight.shape)}")
        if isinstance(m, nn.modules.batchnorm._NormBase):
            shapes = {tuple(t.shape) for t in (m.weight, m.bias, m.running_mean, m.running_var) if t is not None}
            _require(len(shapes) <= 1, f"layer {name}: norm tensors of shapes {sorted(shapes)} differ")


def model_from_spec(spec: dict) -> nn.Module:
    """Rebuild an (uninitialised-weights) registry model from its ``netpress_spec``, including structural changes
    recorded there (``low_rank``: ranks of factorised layers).

    Args:
        spec: see :func:`check_spec` (validated first).

    Returns:
        The model, with ``netpress_spec`` set.

    Raises:
        ConfigError: an invalid spec, or one the model cannot be built for (e.g. a conv net on a tiny input).

    Example:
        >>> net = model_from_spec({"name": "lenet5", "input_shape": [1, 28, 28], "num_classes": 10})
    """
    check_spec(spec)
    model = _construct(spec)
    if spec.get("low_rank"):
        from netpress.lowrank import apply_ranks

        apply_ranks(model, {name: int(rank) for name, rank in spec["low_rank"].items()})
    model.netpress_spec = dict(spec)
    return model


def _construct(spec: dict) -> nn.Module:
    try:
        return MODELS.get(spec["name"])(input_shape=tuple(spec["input_shape"]), num_classes=int(spec["num_classes"]))
    except (RuntimeError, ValueError, TypeError, IndexError, ZeroDivisionError) as exc:
        raise ConfigError(f"cannot build {spec['name']} for input shape {spec['input_shape']}: "
                          f"{_one_line(exc)}") from None


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _is_int(v: object, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def flat_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Output size of ``features`` for one example, computed on the meta device (no compute, no memory)."""
    from torch.func import functional_call

    tensors = {**dict(features.named_parameters()), **dict(features.named_buffers())}
    meta = {k: torch.empty_like(v, device="meta") for k, v in tensors.items()}
    with torch.no_grad():
        return int(functional_call(features, meta, (torch.zeros(1, *input_shape, device="meta"),)).numel())
