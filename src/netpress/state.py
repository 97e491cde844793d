"""The plain view of a model's tensors, shared by every layer (pruning, lottery, the file format).

A parametrized tensor (a pruning mask, a quantizer) is named by its plain name (``'fc1.weight'``), as an
unparametrized model would name it, and its value is the effective one. Nothing here knows how the weights were
pruned or quantized: a parametrization that keeps a ``mask`` tensor (a pruning mask) is re-applied on load.

Example:
    >>> state = plain_state_dict(pruned_net)       # {'fc1.weight': effective (masked) tensor, ...}
    >>> load_plain_state_dict(resize_to(build_model(hp), state), state)
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from netpress.errors import ConfigError

_LINEAR, _CONVS = nn.Linear, (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def plain_name(name: str) -> str:
    """``'fc.parametrizations.weight.original'`` -> ``'fc.weight'``."""
    return name.replace(".parametrizations.", ".").replace(".original", "") if ".parametrizations." in name else name


def split_name(name: str) -> tuple[str, str]:
    """``'features.0.weight'`` -> ``('features.0', 'weight')``."""
    module, _, attr = name.rpartition(".")
    return module, attr


def plain_names(model: nn.Module):
    """Plain tensor names in :func:`plain_state_dict` order (state-dict entries, then parametrized tensors),
    without computing any tensor.

    Example:
        >>> list(plain_names(apply_masks(net, masks)))[-1]
        'fc1.weight'
    """
    for name in model.state_dict(keep_vars=True):
        if ".parametrizations." not in name:
            yield name
    for mname, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for attr in module.parametrizations.keys():
                yield f"{mname}.{attr}" if mname else attr


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Effective tensors (parametrizations applied) keyed by plain names, as an unparametrized model names them.

    Args:
        model: any module.

    Returns:
        ``{plain_name: detached copy}`` of every parameter and buffer.

    Example:
        >>> plain_state_dict(apply_masks(net, masks))["fc1.weight"].eq(0).sum()   # the pruned count
    """
    state = model.state_dict()
    out = {}
    for name in plain_names(model):
        if name not in state:  # a parametrized tensor: its effective value
            mname, _, attr = name.rpartition(".")
            state[name] = getattr(model.get_submodule(mname) if mname else model, attr)
        out[name] = state[name].detach().clone()
    return out


def _mask_of(module: nn.Module, attr: str) -> torch.Tensor | None:
    for p in module.parametrizations[attr]:
        mask = getattr(p, "mask", None)
        if isinstance(mask, torch.Tensor):
            return mask
    return None


@torch.no_grad()
def load_plain_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load plain-named tensors into a possibly parametrized model; masks are kept and re-applied (rewinding).

    Args:
        model: the module, changed in place.
        state: ``{plain_name: tensor}`` covering every parameter and buffer of ``model``.

    Returns:
        ``model``.

    Raises:
        ConfigError: names missing from ``state`` or unknown to ``model`` (checked before any copy of plain tensors).

    Example:
        >>> load_plain_state_dict(pruned_net, rewind_state)   # weights rewound, pruned ones stay zero
    """
    modules = dict(model.named_modules())
    plain = {}
    for name, value in state.items():
        mname, attr = split_name(name)
        module = modules.get(mname)
        if module is not None and parametrize.is_parametrized(module, attr):
            target = module.parametrizations[attr].original
            mask = _mask_of(module, attr)
            target.copy_(value.to(target.device))
            if mask is not None:
                target.mul_(mask)
        else:
            plain[name] = value
    own = {k for k in model.state_dict() if ".parametrizations." not in k}
    unexpected = sorted(set(plain) - own)
    missing = sorted(own - set(plain))
    if unexpected or missing:
        raise ConfigError(f"state does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    sd = model.state_dict()
    for k, v in plain.items():
        sd[k].copy_(v.to(sd[k].device))
    return model


def replace_tensor(module: nn.Module, attr: str, value: torch.Tensor) -> None:
    """Swap ``module.attr`` (a parameter or buffer) for a copy of ``value``, keeping ``requires_grad``."""
    if attr in module._parameters and module._parameters[attr] is not None:
        grad = module._parameters[attr].requires_grad
        module._parameters[attr] = nn.Parameter(value.detach().clone(), requires_grad=grad)
    elif attr in module._buffers and module._buffers[attr] is not None:
        module._buffers[attr] = value.detach().clone()


def sync_shape(m: nn.Module) -> None:
    """Update a module's size attributes (``in_features``, ``out_channels``, ...) to its (resized) tensors."""
    if isinstance(m, _LINEAR):
        m.out_features, m.in_features = m.weight.shape
    elif isinstance(m, _CONVS):
        m.out_channels, m.in_channels = m.weight.shape[0], m.weight.shape[1] * m.groups
    elif isinstance(m, nn.modules.batchnorm._BatchNorm):
        m.num_features = (m.weight if m.weight is not None else m.running_mean).shape[0]


def resize_to(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Give every parameter/buffer of ``model`` the shape it has in ``state`` and update layer sizes.

    Args:
        model: the module, changed in place (resized tensors are zero until loaded).
        state: ``{plain_name: tensor}``; names absent from ``model`` are ignored.

    Returns:
        ``model``.

    Example:
        >>> small = resize_to(build_model(hp), thinned_state)   # a thinned (structurally pruned) layout
    """
    for mname, m in model.named_modules():
        changed = False
        for attr, t in list(m._parameters.items()) + list(m._buffers.items()):
            key = f"{mname}.{attr}" if mname else attr
            if t is not None and key in state and tuple(state[key].shape) != tuple(t.shape):
                replace_tensor(m, attr, torch.zeros(state[key].shape, dtype=t.dtype))
                changed = True
        if changed:
            sync_shape(m)
    return model
