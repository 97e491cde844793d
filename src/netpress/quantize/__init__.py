"""Quantization and weight sharing; every quantized tensor can be exported as :class:`Codes`.

Example:
    >>> from netpress.quantize import share_weights, export_codes, strip_quantization
    >>> net = share_weights(net, bits=5, init="linear")
    >>> codes = export_codes(net)              # {'fc1.weight': Codes(indices, codebook, bits=5, ...), ...}
    >>> net = strip_quantization(net)          # plain float weights equal to the decoded values
"""
from netpress.quantize.activations import (ActivationQuantizer, activation_quantizers, add_activation_quantizers,
                                           calibrate_activations, remove_activation_quantizers)
from netpress.quantize.base import WeightQuantizer, export_codes, kmeans_compression_rate, quantized_tensors
from netpress.quantize.binary import BinaryWeight, TernaryWeight, binarize, ternarize
from netpress.quantize.calibration import CALIBRATORS, aciq_factor
from netpress.quantize.codes import PRUNED, Codes, decode_indices
from netpress.quantize.kmeans import INITS, KMeansResult, kmeans_1d
from netpress.quantize.ptq import PTQHparams, QATHparams, prepare_qat, ptq
from netpress.quantize.strip import strip_quantization
from netpress.quantize.sharing import (CodebookWeight, FinetuneHparams, SharingHparams, finetune_centroids,
                                       kmeans_codebook, share_weights)
from netpress.quantize.uniform import (STEFakeQuantize, UniformQAT, UniformSpec, calibrate, dequantize, fake_quantize,
                                       quantize, quantize_weights, uniform_codes)

__all__ = ["PRUNED", "Codes", "decode_indices", "WeightQuantizer", "export_codes", "kmeans_compression_rate",
           "quantized_tensors", "strip_quantization", "INITS", "KMeansResult", "kmeans_1d", "CodebookWeight",
           "FinetuneHparams", "SharingHparams", "finetune_centroids", "kmeans_codebook", "share_weights",
           "ActivationQuantizer", "activation_quantizers", "add_activation_quantizers", "calibrate_activations",
           "remove_activation_quantizers", "BinaryWeight", "TernaryWeight", "binarize", "ternarize", "CALIBRATORS",
           "aciq_factor", "PTQHparams", "QATHparams", "prepare_qat", "ptq", "STEFakeQuantize", "UniformQAT",
           "UniformSpec", "calibrate", "dequantize", "fake_quantize", "quantize", "quantize_weights", "uniform_codes"]
from netpress.quantize.vector import VQResult, kmeans_vectors, product_quantize, residual_quantize  # noqa: E402

__all__ += ["VQResult", "kmeans_vectors", "product_quantize", "residual_quantize"]
from netpress.quantize.mixed import BitPlan, Sensitivity, allocate_bits, apply_plan, bit_sensitivity  # noqa: E402

__all__ += ["BitPlan", "Sensitivity", "allocate_bits", "apply_plan", "bit_sensitivity"]
from netpress.quantize.methods import METHODS, QuantizeHparams, quantize_model, size_table  # noqa: E402

__all__ += ["METHODS", "QuantizeHparams", "quantize_model", "size_table"]
from netpress.quantize.activations import MODES as ACTIVATION_MODES  # noqa: E402
from netpress.quantize.base import quantizer_input  # noqa: E402

__all__ += ["ACTIVATION_MODES", "quantizer_input"]
from netpress.quantize.gptq import GPTQHparams, attach_codes, gptq_codes, gptq_module  # noqa: E402

__all__ += ["GPTQHparams", "attach_codes", "gptq_codes", "gptq_module"]
from netpress.quantize.ecsq import ECSQResult, ecsq, ecsq_assign, ecsq_weights  # noqa: E402

__all__ += ["ECSQResult", "ecsq", "ecsq_assign", "ecsq_weights"]
from netpress.quantize.soft_sharing import (GaussianMixturePrior, flat_weights, merge_and_quantize,  # noqa: E402
                                             soft_sharing_train)

__all__ += ["GaussianMixturePrior", "flat_weights", "merge_and_quantize", "soft_sharing_train"]
from netpress.quantize.zeroshot import ZeroShotHparams, bn_statistics_loss, synthesize_inputs, zeroshot_ptq  # noqa: E402

__all__ += ["ZeroShotHparams", "bn_statistics_loss", "synthesize_inputs", "zeroshot_ptq"]
from netpress.quantize.quant_noise import QuantNoiseWeight, quant_noise  # noqa: E402

__all__ += ["QuantNoiseWeight", "quant_noise"]
from netpress.quantize.codebook import round_codebooks  # noqa: E402

__all__ += ["round_codebooks"]
