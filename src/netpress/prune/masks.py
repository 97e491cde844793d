"""The one masking mechanism: every pruned tensor is ``original * mask``, applied in one place.

A mask is a :mod:`torch.nn.utils.parametrize` parametrization, so
- the effective weight is exactly zero at masked positions in every forward pass, whatever the optimizer does;
- gradients reaching the original parameter are masked by autograd (d(w*m)/dw = m);
- the original ``nn.Parameter`` object is kept, so an optimizer made before pruning still holds it;
- :func:`strip` makes pruning permanent and leaves an ordinary module.

Tensors are named by their plain names (``'features.0.weight'``) everywhere, masked or not.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from netpress.errors import ConfigError, NetpressError
from netpress.select import SelectorLike, select_tensors

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class Mask(nn.Module):
    """Parametrization multiplying a tensor by a fixed 0/1 mask buffer."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def plain_name(name: str) -> str:
    """``'fc.parametrizations.weight.original'`` -> ``'fc.weight'``."""
    return name.replace(".parametrizations.", ".").replace(".original", "") if ".parametrizations." in name else name


def _split(name: str) -> tuple[str, str]:
    module, _, attr = name.rpartition(".")
    return module, attr


def prunable_tensors(model: nn.Module, names: SelectorLike = None, exclude: Iterable[str] = ()) -> dict[str, tuple[nn.Module, str]]:
    """Tensors pruning may touch, by plain name (delegates to :func:`netpress.select.select_tensors`).

    Args:
        model: any module.
        names: explicit plain names (any tensor, e.g. a bias), selector strings (``'Linear'``, globs, ``'re:...'``)
            or a :class:`~netpress.select.Selector`; default: the ``weight`` of every Linear, Conv and Embedding.
        exclude: plain names or patterns to leave alone.

    Returns:
        ``{plain_name: (owning_module, attribute)}`` in model order.

    Raises:
        ConfigError: a name or pattern that matches nothing (naming the closest real names), or nothing selected.
    """
    return select_tensors(model, names, exclude)


def _mask_module(module: nn.Module, attr: str) -> Mask | None:
    if parametrize.is_parametrized(module, attr):
        for p in module.parametrizations[attr]:
            if isinstance(p, Mask):
                return p
    return None


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Attach (or replace) masks on tensors named by plain name; masked originals are zeroed too.

    Args:
        model: the module, changed in place.
        masks: ``{plain_name: 0/1 tensor of the parameter's shape}``.

    Returns:
        ``model``.

    Example:
        >>> apply_masks(net, {"fc1.weight": (net.fc1.weight.abs() > 0.1).float()})
    """
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        mname, attr = _split(name)
        module = modules.get(mname)
        if module is None or not hasattr(module, attr):
            raise ConfigError(f"no parameter named {name!r} to mask")
        existing = _mask_module(module, attr)
        original = module.parametrizations[attr].original if existing is not None else getattr(module, attr)
        if tuple(mask.shape) != tuple(original.shape):
            raise ConfigError(f"mask for {name} has shape {tuple(mask.shape)}, parameter has {tuple(original.shape)}")
        mask = mask.detach().to(device=original.device, dtype=original.dtype)
        if existing is not None:
            existing.mask.copy_(mask)
        else:
            parametrize.register_parametrization(module, attr, Mask(mask))
        with torch.no_grad():
            module.parametrizations[attr].original.mul_(mask)
    return model


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Current masks by plain name (only tensors that carry one)."""
    out = {}
    for mname, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for attr in list(module.parametrizations.keys()):
            m = _mask_module(module, attr)
            if m is not None:
                out[f"{mname}.{attr}" if mname else attr] = m.mask.detach().clone()
    return out


def masks_from_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The masks stored in a masked model's ``state_dict``, by plain name (to rebuild the masking on load)."""
    marker = ".parametrizations."
    out = {}
    for key, value in state.items():
        if marker in key and key.endswith(".mask"):
            module, rest = key.split(marker, 1)
            out[f"{module}.{rest.split('.', 1)[0]}"] = value
    return out


def is_masked(model: nn.Module) -> bool:
    return bool(get_masks(model))


def strip(model: nn.Module) -> nn.Module:
    """Make pruning permanent: drop mask parametrizations, keeping the masked values. Returns ``model``."""
    for module in model.modules():
        if not parametrize.is_parametrized(module):
            continue
        for attr in list(module.parametrizations.keys()):
            if _mask_module(module, attr) is not None:
                if len(module.parametrizations[attr]) != 1:
                    raise NetpressError(f"{type(module).__name__}.{attr} carries other parametrizations; strip those first")
                _own_class(module)
                parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
    return model


def _own_class(module: nn.Module) -> None:
    """Give a parametrized module a private copy of its generated class.

    ``copy.deepcopy`` of a parametrized module shares the generated ``Parametrized<Type>`` class with the
    original, and removing a parametrization deletes the property from that class, which would silently break
    the original (``'ParametrizedLinear' object has no attribute 'weight'``). A private class avoids that.
    """
    cls = type(module)
    module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Effective tensors (masks applied) keyed by plain names, as an unpruned model would name them."""
    out = {}
    for name, value in model.state_dict().items():
        if ".parametrizations." in name:
            continue
        out[name] = value.detach().clone()
    for mname, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for attr in module.parametrizations.keys():
                out[f"{mname}.{attr}" if mname else attr] = getattr(module, attr).detach().clone()
    return out


@torch.no_grad()
def load_plain_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load plain-named tensors into a possibly masked model; masks are kept and re-applied (rewinding)."""
    modules = dict(model.named_modules())
    plain = {}
    for name, value in state.items():
        mname, attr = _split(name)
        module = modules.get(mname)
        if module is not None and parametrize.is_parametrized(module, attr):
            target = module.parametrizations[attr].original
            mask = _mask_module(module, attr)
            target.copy_(value.to(target.device))
            if mask is not None:
                target.mul_(mask.mask)
        else:
            plain[name] = value
    missing, unexpected = [], []
    own = {k for k in model.state_dict() if ".parametrizations." not in k}
    unexpected = sorted(set(plain) - own)
    missing = sorted(own - set(plain))
    if unexpected or missing:
        raise ConfigError(f"state does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    sd = model.state_dict()
    for k, v in plain.items():
        sd[k].copy_(v.to(sd[k].device))
    return model


def sparsity(model: nn.Module, names: Iterable[str] | None = None) -> float:
    """Fraction of zeros over the prunable tensors (default: Linear/Conv weights)."""
    total = zeros = 0
    for module, attr in prunable_tensors(model, names).values():
        w = getattr(module, attr)
        total += w.numel()
        zeros += (w == 0).sum().item()
    return zeros / max(total, 1)
