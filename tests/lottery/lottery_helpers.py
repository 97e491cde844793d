"""Shared settings of the lottery tests: tiny experiments on synthetic data (seconds)."""
from __future__ import annotations

from netpress.data import DataHparams
from netpress.lottery import LotteryHparams
from netpress.models import ModelHparams
from netpress.train import TrainingHparams

MODEL = ModelHparams("lenet300")
DATA = DataHparams("synthetic")
TRAIN = TrainingHparams(optimizer="adam", lr=1e-2, batch_size=50, steps="2ep", eval_every="10it")


def tiny(**changes) -> LotteryHparams:
    base = dict(levels=2, prune_fraction=0.5, output_fraction=0.2, controls="reinit,random-mask,oneshot")
    return LotteryHparams(**{**base, **changes})
