"""Run compressed models fast and small: per-layer kernels chosen by measurement, integer-only inference, ONNX.

Example:
    >>> from netpress.runtime import convert, resident_bytes
    >>> fast = convert(compressed_net)              # int8 / low-bit / CSR / dense per layer, timed on this machine
    >>> fast.runtime_plan.rows()                    # the per-layer plan
    >>> resident_bytes(fast) / resident_bytes(dense_net)
    >>> fast2 = netpress.load("net.netp", runtime="auto")
"""
from netpress.runtime.api import check_runtime, export_file, for_file, inspect_runtime, load
from netpress.runtime.convert import RuntimeHparams, convert, run
from netpress.runtime.kernels import KERNELS, Int8Conv2d, Int8Linear, LowBitConv2d, LowBitEmbedding, LowBitLinear
from netpress.runtime.memory import resident_bytes
from netpress.runtime.onnx_export import export_onnx, run_onnx
from netpress.runtime.plan import LayerPlan, Plan, TimingCache, choose, machine_id
from netpress.runtime.weights import LowBit, int8_rows, lowbit
from netpress.runtime.integer import IntegerNet, IntProgram, integer_forward, integerize, numpy_forward

__all__ = ["load", "check_runtime", "export_file", "for_file", "inspect_runtime", "RuntimeHparams", "convert", "run", "KERNELS", "Int8Conv2d", "Int8Linear", "LowBitConv2d",
           "LowBitEmbedding", "LowBitLinear", "resident_bytes", "export_onnx", "run_onnx", "LayerPlan", "Plan", "TimingCache", "choose",
           "machine_id", "LowBit", "int8_rows", "lowbit", "IntegerNet", "IntProgram", "integer_forward", "integerize",
           "numpy_forward"]
