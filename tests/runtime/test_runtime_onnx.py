"""ONNX export: QDQ int8 weight initializers, run in onnxruntime against netpress's own outputs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from netpress.models import build_model
from netpress.prune import prune
from netpress.quantize import UniformSpec, quantize_weights, share_weights
from netpress.runtime import export_onnx, run_onnx
from netpress.runtime.convert import _plain_copy

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
warnings.filterwarnings("ignore")


def _ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_uniform_int8_lenet5_is_exact_qdq(tmp_path):
    net = build_model("lenet5", (1, 28, 28), 10, seed=0)
    quantize_weights(net, UniformSpec(bits=8, granularity="channel", symmetric=True))
    path = tmp_path / "m.onnx"
    x = torch.randn(3, 1, 28, 28)
    report = export_onnx(net, x[:1], path)
    assert len(report["quantized"]) == 4 and report["max_error"] == 0.0 and report["not_in_graph"] == []
    assert _ops(path).count("DequantizeLinear") == 4
    g = onnx.load(str(path)).graph
    int8 = [i for i in g.initializer if i.data_type == onnx.TensorProto.INT8 and i.name.endswith("_quantized")]
    assert len(int8) == 4 and not any(i.name.endswith(".weight") for i in g.initializer if i.name.startswith("features"))
    with torch.no_grad():
        ref = _plain_copy(net)(x).numpy()
    # same weights up to q * scale float rounding (1e-6 relative): outputs within 1e-4
    np.testing.assert_allclose(run_onnx(path, x), ref, rtol=1e-4, atol=1e-4)


def test_kmeans_pruned_lenet300_within_requant_tolerance(tmp_path):
    net = build_model("lenet300", (1, 28, 28), 10, seed=0)
    share_weights(prune(net, 0.9), bits=5)
    x = torch.randn(5, 1, 28, 28)
    path = tmp_path / "m.onnx"
    report = export_onnx(net, x[:1], path)
    assert 0 < report["max_error"] <= 0.5 / 127 + 1e-6 and not report["float"]
    with torch.no_grad():
        ref = _plain_copy(net)(x).numpy()
    assert np.abs(run_onnx(path, x) - ref).max() <= 0.02 * np.abs(ref).max()
    strict = export_onnx(net, x[:1], tmp_path / "strict.onnx", requant_tol=0.0)
    assert strict["quantized"] == [] and len(strict["float"]) == 3  # exact-only: k-means weights stay float
