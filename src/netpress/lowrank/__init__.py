"""Low-rank factorization by truncated SVD (Denton et al. 2014), for any nn.Module.

Linear layers become two Linears (``n -> k -> m``, bias on the second); groups=1 Conv2d layers are factorized
over channels (``k`` filters with the original kernel, then a 1x1 conv). Ranks come from an energy threshold,
a per-layer compression rate ``mn / k(m+n+1)``, a global parameter budget, or a fixed rank.

Example:
    >>> from netpress.lowrank import LowRankHparams, low_rank
    >>> res = low_rank(model, LowRankHparams(energy=0.95, finetune="2ep"), data=data, spectrum_png="spectra.png")
    >>> res.summary()["ratio"]
"""
from netpress.lowrank.api import (LayerReport, LowRankResult, apply_ranks, count_params, low_rank, plan_ranks,
                                  select_layers)
from netpress.lowrank.hparams import LowRankHparams
from netpress.lowrank.svd import (Factorized, compression_rate, factorize_conv2d, factorize_layer, factorize_linear,
                                  rank_for_energy, rank_for_ratio, singular_values)

__all__ = ["LayerReport", "LowRankResult", "apply_ranks", "count_params", "low_rank", "plan_ranks", "select_layers",
           "LowRankHparams", "Factorized", "compression_rate", "factorize_conv2d", "factorize_layer",
           "factorize_linear", "rank_for_energy", "rank_for_ratio", "singular_values"]
