"""Calibration: run a model on unlabeled inputs, capture per-layer input statistics, compress layer by layer.

- :mod:`~netpress.calibrate.inputs`: any batch (tensor, tuple, mapping) in; any output (tensor, tuple,
  ``ModelOutput``) read as one tensor.
- :mod:`~netpress.calibrate.quality`: output MSE / cosine against the original model, or a user loss.
- :mod:`~netpress.calibrate.stats`: forward pre-hooks streaming ``H = 2 X^T X / n`` and input column norms.
- :mod:`~netpress.calibrate.sequential`: the layer-wise loop (solvers live in ``quantize``/``prune``).
- :mod:`~netpress.calibrate.oneshot`: :func:`oneshot`, Wanda / SparseGPT / GPTQ in one call.
- :mod:`~netpress.calibrate.awq`: activation-aware scaling before quantization (AWQ), folded where exact.

Example:
    >>> from netpress.calibrate import oneshot
    >>> from netpress.quantize import GPTQHparams
    >>> net = oneshot(net, [x_calib], quantize=GPTQHparams(bits=4))
"""
from netpress.calibrate.inputs import call_model, check_inputs, first_tensor, model_device
from netpress.calibrate.quality import LOSSES, OutputQuality, make_quality
from netpress.calibrate.sequential import execution_groups, layerwise
from netpress.calibrate.stats import InputStats, capture, input_matrix, supports, weight_matrix
from netpress.calibrate.oneshot import layer_hessians, oneshot, select_layers
from netpress.calibrate.awq import awq_scale

__all__ = ["call_model", "check_inputs", "first_tensor", "model_device", "LOSSES", "OutputQuality", "make_quality",
           "execution_groups", "layerwise", "InputStats", "capture", "input_matrix", "supports", "weight_matrix",
           "layer_hessians", "oneshot", "select_layers", "awq_scale"]
