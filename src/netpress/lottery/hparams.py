"""Typed hyperparameters of a lottery-ticket experiment (iterative magnitude pruning with rewinding)."""
from __future__ import annotations

import dataclasses

from netpress.hparams import Hparams, require
from netpress.train import TrainingHparams
from netpress.units import Steps

CONTROLS = ("reinit", "random-mask", "oneshot", "scratch", "finetuned")
SCOPES = ("global", "local")
REWIND_MODES = ("lr", "finetune")  # besides a point in training ('0it', '500it', '2ep')
BRANCH = "ticket"  # the main line of each level
ADDITIVE = ("levels", "replicates", "controls", "control_levels", "lmc_levels", "lmc_rewinds", "lmc_points", "lmc_seeds",
            "early_bird", "early_bird_every", "early_bird_window", "early_bird_eps")


def _split(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


@dataclasses.dataclass(frozen=True)
class LotteryHparams(Hparams):
    """How tickets are found and which controls and analyses run beside them.

    Attributes:
        levels: pruning levels after the dense level 0 (>= 1); level L keeps (1-p)^L of the weights.
        prune_fraction: fraction p of the remaining weights pruned at each level, in (0, 1).
        output_fraction: fraction pruned per level in the output layer, in [0, 1) (0 leaves it dense).
        scope: ``global`` (one magnitude threshold over the hidden layers) or ``local`` (per layer).
        rewind: where survivors restart: a point of the dense run (``'0it'`` = initialization, ``'500it'``,
            ``'2ep'``), ``'lr'`` (learning-rate rewinding: keep the trained weights, replay the lr schedule)
            or ``'finetune'`` (keep the trained weights, train on at the schedule's final lr).
        controls: comma-separated branches trained beside each ticket: ``reinit`` (same mask, fresh init),
            ``random-mask`` (same per-layer counts, random positions), ``oneshot`` (the dense net pruned once
            to the same sparsity), and the "rethinking the value of pruning" pair (Liu et al. 2019):
            ``scratch`` (same mask, fresh init, the dense net's whole schedule from iteration 0: Scratch-E) and
            ``finetuned`` (same mask on the previous level's trained weights, trained ``steps`` more at the
            schedule's final lr).
        control_levels: comma-separated levels that get the controls ('' = every level), to save compute.
        replicates: independent repeats (model seed = training seed + replicate index).
        lmc_levels: comma-separated levels whose ticket gets a linear-mode-connectivity analysis ('' = none;
            level 0 is the dense net).
        lmc_rewinds: comma-separated points the two LMC copies start from ('' = the rewind point, or '0it'
            for ``lr``/``finetune``).
        lmc_points: evaluation points on the line between the two copies (>= 3).
        lmc_seeds: the two data-order seeds of the copies, ``'a,b'``.
        early_bird: also search an Early-Bird ticket (You et al. 2020) per replicate: train the dense net from
            the same init, draw the final level's mask every ``early_bird_every``, stop when the last
            ``early_bird_window`` mask distances are all below ``early_bird_eps``, then retrain that ticket
            (mask on the weights at detection) for the whole schedule; compared with the final IMP level.
        early_bird_every: interval between mask observations (``'1ep'``, ``'200it'``).
        early_bird_window: consecutive distances that must be below ``early_bird_eps`` (>= 1).
        early_bird_eps: mask-distance threshold, a fraction of the weights in (0, 1].

    Example:
        >>> LotteryHparams(levels=15, rewind="0it", controls="reinit,random-mask").control_names
        ('reinit', 'random-mask')
    """

    levels: int = 15
    prune_fraction: float = 0.2
    output_fraction: float = 0.1
    scope: str = "global"
    rewind: str = "0it"
    controls: str = "reinit,random-mask"
    control_levels: str = ""
    replicates: int = 1
    lmc_levels: str = ""
    lmc_rewinds: str = ""
    lmc_points: int = 30
    lmc_seeds: str = "1001,1002"
    early_bird: bool = False
    early_bird_every: str = "1ep"
    early_bird_window: int = 5
    early_bird_eps: float = 0.1

    def validate(self) -> None:
        require(isinstance(self.levels, int) and self.levels >= 1, f"levels must be an integer >= 1, got {self.levels!r}")
        require(0 < self.prune_fraction < 1, f"prune_fraction must be in (0, 1), got {self.prune_fraction}")
        require(0 <= self.output_fraction < 1, f"output_fraction must be in [0, 1), got {self.output_fraction}")
        require(self.scope in SCOPES, f"unknown scope {self.scope!r}; known: {', '.join(SCOPES)}")
        _validate_rewind(self.rewind)
        unknown = [c for c in self.control_names if c not in CONTROLS]
        require(not unknown, f"unknown control(s) {unknown}; known: {', '.join(CONTROLS)}")
        require(isinstance(self.replicates, int) and self.replicates >= 1, f"replicates must be >= 1, got {self.replicates!r}")
        for lv in self.lmc_level_list:
            require(0 <= lv <= self.levels, f"lmc level {lv} outside 0..{self.levels}")
        for lv in _int_list(self.control_levels, "control_levels"):
            require(1 <= lv <= self.levels, f"control level {lv} outside 1..{self.levels}")
        for r in self.lmc_rewind_list:
            require(r not in REWIND_MODES, f"LMC copies start from a point in training, not {r!r}")
            _validate_rewind(r)
        require(self.lmc_points >= 3, f"lmc_points must be >= 3, got {self.lmc_points}")
        seeds = _split(self.lmc_seeds)
        require(len(seeds) == 2 and all(s.lstrip("-").isdigit() for s in seeds) and seeds[0] != seeds[1],
                f"lmc_seeds must be two different integers 'a,b', got {self.lmc_seeds!r}")
        _validate_early_bird(self)

    @property
    def control_names(self) -> tuple[str, ...]:
        return _split(self.controls)

    @property
    def branches(self) -> tuple[str, ...]:
        """The ticket followed by the controls."""
        return (BRANCH, *self.control_names)

    def level_branches(self, level: int) -> tuple[str, ...]:
        """The branches trained at ``level`` (the ticket, plus the controls where ``control_levels`` allows)."""
        chosen = _int_list(self.control_levels, "control_levels")
        return self.branches if not chosen or level in chosen else (BRANCH,)

    @property
    def rewind_iteration(self) -> Steps | None:
        """The rewind point as :class:`Steps`, or None for ``lr``/``finetune``."""
        return None if self.rewind in REWIND_MODES else Steps.parse(self.rewind)

    @property
    def lmc_level_list(self) -> tuple[int, ...]:
        return _int_list(self.lmc_levels, "lmc_levels")

    @property
    def lmc_rewind_list(self) -> tuple[str, ...]:
        given = _split(self.lmc_rewinds)
        if given:
            return given
        return ("0it",) if self.rewind in REWIND_MODES else (self.rewind,)

    @property
    def lmc_seed_pair(self) -> tuple[int, int]:
        a, b = _split(self.lmc_seeds)
        return int(a), int(b)

    def identity(self) -> "LotteryHparams":
        """The settings that change numbers; levels, replicates, controls and LMC only add stages, so they are
        left out of the experiment's hash (raising ``levels`` later reuses every finished level)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in ADDITIVE}
        return self.replace(**defaults)

    def density(self, level: int, output: bool = False) -> float:
        """Fraction of weights kept after ``level`` levels: (1 - p)^level (output layer: its own rate)."""
        return (1 - (self.output_fraction if output else self.prune_fraction)) ** level


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in _split(text))
    except ValueError:
        raise_config(f"{what} must be comma-separated integers, got {text!r}")


def _validate_early_bird(hp: LotteryHparams) -> None:
    try:
        Steps.parse(hp.early_bird_every, allow_zero=False)
    except Exception:
        raise_config(f"early_bird_every must be a length > 0 like '1ep' or '200it', got {hp.early_bird_every!r}")
    require(isinstance(hp.early_bird_window, int) and hp.early_bird_window >= 1,
            f"early_bird_window must be an integer >= 1, got {hp.early_bird_window!r}")
    require(0 < hp.early_bird_eps <= 1, f"early_bird_eps must be in (0, 1], got {hp.early_bird_eps}")


def _validate_rewind(text: str) -> None:
    if text in REWIND_MODES:
        return
    try:
        Steps.parse(text)
    except Exception:
        raise_config(f"unknown rewind {text!r}: use a point in training ('0it', '500it', '2ep'), "
                     f"'lr' (learning-rate rewinding) or 'finetune'")


def raise_config(message: str):
    from netpress.errors import ConfigError

    raise ConfigError(message)


def lottery_training_defaults() -> TrainingHparams:
    """Frankle & Carbin's LeNet-300-100 setting: Adam 1.2e-3, batch 60, constant lr (length: pick your own).

    Returns:
        :class:`TrainingHparams` with those values and ``steps='5ep'`` (the paper: 50K iterations).

    Example:
        >>> lottery_training_defaults().replace(steps="50000it").batch_size
        60
    """
    return TrainingHparams(optimizer="adam", lr=1.2e-3, batch_size=60, steps="5ep", lr_schedule="constant")
