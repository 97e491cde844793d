"""Making quantization permanent. Above both weight and activation quantizers, so neither imports the other."""
from __future__ import annotations

from torch import nn

from netpress.quantize.activations import remove_activation_quantizers
from netpress.quantize.base import quantized_tensors, remove_quantizer


def strip_quantization(model: nn.Module, activations: bool = False) -> nn.Module:
    """Make weight quantization permanent: plain float weights equal to the decoded values.

    Other parametrizations on a quantized tensor (e.g. a pruning mask under a QAT quantizer) are folded in too;
    the values stay exactly what the model computed.

    Args:
        model: a quantized model, changed in place.
        activations: also remove activation fake-quantizers (default: keep them; they are part of the function).

    Returns:
        ``model``.

    Example:
        >>> net = strip_quantization(share_weights(net, bits=4))
        >>> len(torch.unique(net.fc1.weight)) <= 16
        True
    """
    for _name, (module, attr, _q, _pos) in quantized_tensors(model).items():
        remove_quantizer(module, attr)
    if activations:
        remove_activation_quantizers(model)
    return model
