"""Low-rank factorization hyperparameters."""
from __future__ import annotations

import dataclasses

from netpress.hparams import Hparams, require
from netpress.units import Steps

SELECTORS = ("energy", "ratio", "budget", "rank")
LAYER_GROUPS = ("linear", "conv", "all")


@dataclasses.dataclass(frozen=True)
class LowRankHparams(Hparams):
    """Which layers to factorize and how the rank of each is chosen. Set exactly one rank selector.

    Attributes:
        energy: per layer, the smallest rank keeping this fraction of the squared singular values, in (0, 1].
        ratio: per layer, the largest rank reaching this compression rate ``mn / k(m+n+1)`` (>= 1).
        budget: total weight count of the factorized layers after factorization (sum of ``k(m+n)``); ranks are
            allocated greedily across layers by kept energy fraction per parameter.
        rank: the same rank for every selected layer; must be <= min(m, n) of each.
        layers: ``linear`` (every nn.Linear), ``conv`` (every groups=1 nn.Conv2d), ``all``, or a comma-separated
            list of module names (``'features.0,fc_out'``).
        skip_unprofitable: keep a layer dense when its factorization would not have fewer weights.
        finetune: training length after factorization (``'2ep'``; ``'0ep'`` = none).

    Example:
        >>> LowRankHparams(energy=0.95, finetune="2ep")
    """

    energy: float | None = None
    ratio: float | None = None
    budget: int | None = None
    rank: int | None = None
    layers: str = "linear"
    skip_unprofitable: bool = True
    finetune: str = "0ep"

    def validate(self) -> None:
        chosen = [s for s in SELECTORS if getattr(self, s) is not None]
        require(len(chosen) == 1, f"set exactly one rank selector of {', '.join(SELECTORS)}; got {chosen or 'none'}")
        if self.energy is not None:
            require(0 < self.energy <= 1, f"energy must be in (0, 1], got {self.energy}")
        if self.ratio is not None:
            require(self.ratio >= 1, f"compression ratio must be >= 1, got {self.ratio}")
        if self.budget is not None:
            require(self.budget > 0, f"parameter budget must be > 0, got {self.budget}")
        if self.rank is not None:
            require(self.rank >= 1, f"rank must be >= 1, got {self.rank}")
        require(bool(self.layers.strip()), "layers must name a group (linear, conv, all) or modules")
        Steps.parse(self.finetune)

    @property
    def selector(self) -> str:
        """The one rank selector that is set (``energy``, ``ratio``, ``budget`` or ``rank``)."""
        return next(s for s in SELECTORS if getattr(self, s) is not None)
