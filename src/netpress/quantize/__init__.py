"""Quantization and weight sharing; every quantized tensor can be exported as :class:`Codes`.

Example:
    >>> from netpress.quantize import share_weights, export_codes, strip_quantization
    >>> net = share_weights(net, bits=5, init="linear")
    >>> codes = export_codes(net)              # {'fc1.weight': Codes(indices, codebook, bits=5, ...), ...}
    >>> net = strip_quantization(net)          # plain float weights equal to the decoded values
"""
from netpress.quantize.base import (WeightQuantizer, export_codes, kmeans_compression_rate, quantized_tensors,
                                    strip_quantization)
from netpress.quantize.codes import PRUNED, Codes, decode_indices
from netpress.quantize.kmeans import INITS, KMeansResult, kmeans_1d
from netpress.quantize.sharing import (CodebookWeight, FinetuneHparams, SharingHparams, finetune_centroids,
                                       kmeans_codebook, share_weights)

__all__ = ["PRUNED", "Codes", "decode_indices", "WeightQuantizer", "export_codes", "kmeans_compression_rate",
           "quantized_tensors", "strip_quantization", "INITS", "KMeansResult", "kmeans_1d", "CodebookWeight",
           "FinetuneHparams", "SharingHparams", "finetune_centroids", "kmeans_codebook", "share_weights"]
