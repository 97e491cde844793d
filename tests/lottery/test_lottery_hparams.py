import pytest

from netpress.errors import ConfigError
from netpress.lottery import LotteryHparams, experiment_id, retrain_hparams
from netpress.train import TrainingHparams

from lottery_helpers import DATA, MODEL, TRAIN


@pytest.mark.parametrize("changes, words", [
    ({"levels": 0}, "levels"),
    ({"prune_fraction": 0.0}, "prune_fraction"),
    ({"prune_fraction": 1.0}, "prune_fraction"),
    ({"output_fraction": 1.2}, "output_fraction"),
    ({"controls": "reinit,shuffle"}, "unknown control"),
    ({"rewind": "soon"}, "unknown rewind"),
    ({"scope": "tree"}, "unknown scope"),
    ({"replicates": 0}, "replicates"),
    ({"lmc_levels": "0,9", "levels": 3}, "lmc level 9"),
    ({"lmc_rewinds": "lr", "lmc_levels": "0"}, "point in training"),
    ({"lmc_seeds": "1,1"}, "lmc_seeds"),
])
def test_bad_values_raise_config_error(changes, words):
    with pytest.raises(ConfigError, match=words):
        LotteryHparams(**changes)


def test_names_and_rewind_points():
    hp = LotteryHparams(rewind="2ep", controls="reinit, random-mask")
    assert hp.branches == ("ticket", "reinit", "random-mask")
    assert hp.rewind_iteration.iterations(100) == 200
    assert LotteryHparams(rewind="lr").rewind_iteration is None
    assert LotteryHparams(rewind="lr").lmc_rewind_list == ("0it",)
    assert abs(LotteryHparams(prune_fraction=0.2).density(15) - 0.8 ** 15) < 1e-12


def test_additive_settings_do_not_change_the_experiment_id():
    base = experiment_id(MODEL, DATA, TRAIN, LotteryHparams(levels=2))
    assert base == experiment_id(MODEL, DATA, TRAIN, LotteryHparams(levels=15, replicates=3, controls="oneshot",
                                                                    lmc_levels="0,1"))
    assert base != experiment_id(MODEL, DATA, TRAIN, LotteryHparams(levels=2, rewind="10it"))
    assert base != experiment_id(MODEL, DATA, TRAIN.replace(seed=1), LotteryHparams(levels=2))


def test_retrain_hparams_per_rewind_mode():
    hp = TrainingHparams(steps="1000it", lr=0.1, lr_schedule="linear")
    assert retrain_hparams(LotteryHparams(rewind="0it"), hp, 50) == (hp, 0)
    late, start = retrain_hparams(LotteryHparams(rewind="2ep"), hp, 50)
    assert (late.steps, start) == ("900it", 100)
    assert retrain_hparams(LotteryHparams(rewind="lr"), hp, 50) == (hp, 0)
    ft, start = retrain_hparams(LotteryHparams(rewind="finetune"), hp, 50)
    assert start == 0 and ft.lr_schedule == "constant" and ft.lr == pytest.approx(0.1 * (1 - 999 / 1000))
