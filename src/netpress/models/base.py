"""Model registry, initialisers and a spec each built model carries so it can be rebuilt by name."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import nn

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
    model.netpress_spec = {"name": hparams.name, "input_shape": list(input_shape), "num_classes": num_classes}
    return model


def model_from_spec(spec: dict) -> nn.Module:
    """Rebuild an (uninitialised-weights) registry model from its ``netpress_spec``, including structural changes
    recorded there (``low_rank``: ranks of factorised layers)."""
    model = MODELS.get(spec["name"])(input_shape=tuple(spec["input_shape"]), num_classes=int(spec["num_classes"]))
    if spec.get("low_rank"):
        from netpress.lowrank import apply_ranks

        apply_ranks(model, {name: int(rank) for name, rank in spec["low_rank"].items()})
    model.netpress_spec = dict(spec)
    return model


def flat_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())
