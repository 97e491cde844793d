"""Lottery tickets: iterative magnitude pruning in levels, rewinding, control branches, linear mode connectivity.

Example:
    >>> from netpress.lottery import LotteryHparams, run_lottery, lottery_training_defaults
    >>> res = run_lottery(ModelHparams("lenet300"), DataHparams("fashion-mnist"), lottery_training_defaults(),
    ...                   LotteryHparams(levels=15, rewind="0it", controls="reinit,random-mask", replicates=2))
"""
from netpress.lottery.experiment import (LotteryResult, derived_seed, experiment_id, retrain_hparams, rewind_state,
                                         run_lottery)
from netpress.lottery.hparams import BRANCH, CONTROLS, LotteryHparams, lottery_training_defaults
from netpress.lottery.lmc import Interpolation, error_barrier, interpolate_state, linear_interpolation
from netpress.lottery.pruning import level_masks, mask_sparsity, output_layer, random_masks
from netpress.lottery.results import stats, summarise
from netpress.lottery.stages import load_stage, set_weights, train_stage

__all__ = ["LotteryResult", "derived_seed", "experiment_id", "retrain_hparams", "rewind_state", "run_lottery",
           "BRANCH", "CONTROLS", "LotteryHparams", "lottery_training_defaults", "Interpolation", "error_barrier",
           "interpolate_state", "linear_interpolation", "level_masks", "mask_sparsity", "output_layer",
           "random_masks", "stats", "summarise", "load_stage", "set_weights", "train_stage"]
from netpress.lottery.early_bird import EarlyBird, global_mask, mask_distance  # noqa: E402

__all__ += ["EarlyBird", "global_mask", "mask_distance"]
from netpress.lottery.rethinking import RethinkingResult, rethinking_control, scratch_init  # noqa: E402

__all__ += ["RethinkingResult", "rethinking_control", "scratch_init"]
