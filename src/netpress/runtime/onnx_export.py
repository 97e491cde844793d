"""ONNX export of a compressed model with its quantized weights in the standard QDQ form.

The decoded float model is exported with ``torch.onnx.export`` (TorchScript exporter), then every quantized
weight initializer ``W`` is replaced by an int8 initializer ``W_quantized``, a per-output-channel float scale and
an int8 zero point (0), feeding ``DequantizeLinear(axis=0)`` whose output keeps the name ``W``. int8 values are the
same as the ``int8`` kernel's (exact for weights on a symmetric int8 grid; k-means codebooks re-quantized within
``requant_tol``). Needs the ``onnx`` extra (``onnx``, ``onnxruntime``).
"""
from __future__ import annotations

import io
import os
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from netpress.errors import ConfigError

OPSET = 17


def export_onnx(model: nn.Module, example_inputs: Any, path: str | os.PathLike, *,
                codes: Mapping[str, Any] | Iterable[str] | None = None, requant_tol: float = 0.01,
                input_names: list[str] | None = None, dynamic_axes: dict | None = None) -> dict:
    """Write ``model`` as ONNX with quantized weights as int8 initializers + DequantizeLinear.

    Args:
        model: a compressed model (quantizers / masks attached, or decoded weights).
        example_inputs: a tensor or tuple of tensors (the batch dimension is exported as dynamic).
        path: the ``.onnx`` file to write (atomically).
        codes: ``{plain_name: Codes}`` or names of the quantized weights (default: ``export_codes(model)``).
        requant_tol: the largest int8 re-quantization error allowed for weights not on an int8 grid
            (``max|w - q*s| / max|w|`` per row); weights above it stay float.
        input_names: graph input names (default ``input`` / ``input0, input1, ...``).
        dynamic_axes: as for ``torch.onnx.export`` (default: dim 0 of every input and of ``output``).

    Returns:
        ``{'path', 'bytes', 'quantized': [names], 'float': [names kept float], 'not_in_graph': [quantized names
        that are no initializer of the exported graph, e.g. unused by this forward], 'max_error'}``.

    Raises:
        ConfigError: the ``onnx`` package is missing.

    Example:
        >>> export_onnx(net, torch.randn(1, 1, 28, 28), "net.onnx")["quantized"]
        ['features.0.weight', 'features.2.weight', 'fc_out.weight']
    """
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx extra: pip install 'netpress[onnx]'") from None
    from netpress.runtime.convert import _plain_copy, _quantized_names

    names = _quantized_names(model, codes)
    plain = _plain_copy(model)
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    graph = torch_export(plain, args, input_names, dynamic_axes)
    report = quantize_initializers(graph, names, requant_tol)
    blob = graph.SerializeToString()
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)
    onnx.checker.check_model(os.fspath(path))
    return {"path": os.fspath(path), "bytes": len(blob), **report}


def torch_export(model: nn.Module, args: tuple, input_names: list[str] | None = None, dynamic_axes: dict | None = None):
    """The float ONNX graph (``onnx.ModelProto``) of ``model`` via the TorchScript exporter, parameter names kept."""
    import onnx

    names = input_names or [f"input{i}" if len(args) > 1 else "input" for i in range(len(args))]
    buf = io.BytesIO()
    dynamic = dynamic_axes or {n: {0: "batch"} for n in names} | {"output": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(model, args, buf, input_names=names, output_names=["output"], opset_version=OPSET,
                          dynamic_axes=dynamic, do_constant_folding=False, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def quantize_initializers(model_proto, names: Iterable[str], requant_tol: float) -> dict:
    """Rewrite the named float initializers of an ONNX model into int8 + DequantizeLinear (in place)."""
    from onnx import helper, numpy_helper

    from netpress.runtime.weights import int8_rows

    inits = {i.name: i for i in model_proto.graph.initializer}
    absent = sorted(set(names) - set(inits))  # unused by this forward (or renamed by the exporter): reported
    done, kept, worst, nodes = [], [], 0.0, []
    for name in sorted(set(names) & set(inits)):
        w = torch.from_numpy(numpy_helper.to_array(inits[name]).copy())
        i8 = int8_rows(w)
        if not i8.exact and i8.error > requant_tol:
            kept.append(name)
            continue
        worst = max(worst, 0.0 if i8.exact else i8.error)
        q = i8.q.reshape(w.shape).numpy()
        new = [numpy_helper.from_array(q.astype(np.int8), f"{name}_quantized"),
               numpy_helper.from_array(i8.scale.numpy().astype(np.float32), f"{name}_scale"),
               numpy_helper.from_array(np.zeros(len(i8.scale), np.int8), f"{name}_zero_point")]
        model_proto.graph.initializer.remove(inits[name])
        model_proto.graph.initializer.extend(new)
        nodes.append(helper.make_node("DequantizeLinear", [t.name for t in new], [name], name=f"{name}_dq", axis=0))
        done.append(name)
    for node in reversed(nodes):
        model_proto.graph.node.insert(0, node)
    return {"quantized": done, "float": kept, "not_in_graph": absent, "max_error": worst}


def run_onnx(path: str | os.PathLike, *inputs: torch.Tensor) -> np.ndarray:
    """Run an ONNX file in onnxruntime (CPU) and return its first output."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("running ONNX needs the onnx extra: pip install 'netpress[onnx]'") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
    return sess.run(None, feeds)[0]
