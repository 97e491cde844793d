"""Quantization and weight sharing; every quantized tensor can be exported as :class:`Codes`."""
from netpress.quantize.codes import PRUNED, Codes, decode_indices

__all__ = ["PRUNED", "Codes", "decode_indices"]
