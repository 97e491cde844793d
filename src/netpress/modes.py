"""Running a block of code with a model in eval mode, then putting every submodule's mode back.

``model.train(was_training)`` after ``model.eval()`` sets *every* submodule to the outer flag, so a model with
frozen parts (BatchNorm kept in eval mode while the rest trains) would come back changed; :func:`eval_mode`
restores each submodule's own flag, also when the block raises.

Example:
    >>> with eval_mode(net):
    ...     logits = net(x)
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block; afterwards each submodule has its own earlier training flag.

    Args:
        model: any module.

    Yields:
        ``model``.

    Example:
        >>> with eval_mode(net) as m:
        ...     m(torch.zeros(1, 784))
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag
