"""Model-level factorization: rank planning by energy/ratio/budget/rank, reports, plots, fine-tuning, errors."""
import pytest
import torch
from torch import nn

from netpress.data import load_data
from netpress.errors import ConfigError
from netpress.lowrank import Factorized, LowRankHparams, apply_ranks, low_rank, plan_ranks
from netpress.models import build_model
from netpress.train import TrainingHparams, evaluate


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * 8 * 8, 40), nn.ReLU(), nn.Linear(40, 4))


def test_full_rank_model_reproduces_outputs_and_keeps_original():
    net = _net().double()
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    res = low_rank(net, LowRankHparams(rank=4, layers="all", skip_unprofitable=False))
    assert res.ranks == {"0": 4, "3": 4, "5": 4}
    full = low_rank(net, LowRankHparams(energy=1.0, layers="all", skip_unprofitable=False))
    assert full.ranks == {"0": 6, "3": 40, "5": 4}
    torch.testing.assert_close(full.model(x), net(x))
    assert isinstance(net[3], nn.Linear)  # not inplace: the original is untouched


def test_reports_errors_and_params():
    net = _net()
    res = low_rank(net, LowRankHparams(rank=3, layers="3,5"))
    by = {r.name: r for r in res.layers}
    s = torch.tensor(by["3"].singular_values, dtype=torch.float64)
    assert by["3"].error == pytest.approx((s[3:] ** 2).sum().item(), rel=1e-6)
    assert by["3"].energy_kept == pytest.approx(((s[:3] ** 2).sum() / (s ** 2).sum()).item(), rel=1e-6)
    assert by["3"].params_before == 384 * 40 + 40 and by["3"].params_after == 3 * (384 + 40) + 40
    assert res.params_before - res.params_after == sum(r.params_before - r.params_after for r in res.layers)
    assert res.summary()["ratio"] > 1


def test_energy_threshold_per_layer():
    net = _net()
    ranks, spectra = plan_ranks(net, LowRankHparams(energy=0.6, skip_unprofitable=False))
    for name, k in ranks.items():
        sq = spectra[name] ** 2
        assert (sq[:k].sum() / sq.sum()).item() >= 0.6
        assert k == 1 or (sq[:k - 1].sum() / sq.sum()).item() < 0.6


def test_ratio_selection_reaches_the_rate():
    res = low_rank(_net(), LowRankHparams(ratio=4.0, layers="3"))
    (r,) = res.layers
    m, n = r.shape
    assert m * n / (r.rank * (m + n + 1)) >= 4.0 > m * n / ((r.rank + 1) * (m + n + 1))


def test_budget_is_respected_and_spent():
    net = build_model("lenet300", (1, 8, 8), 10, seed=0)
    dense = sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Linear))
    for factor in (2, 4, 8):
        budget = dense // factor
        ranks, _ = plan_ranks(net, LowRankHparams(budget=budget))
        shapes = {"features.0": (300, 64), "features.2": (100, 300), "fc_out": (10, 100)}
        used = sum(k * sum(shapes[n]) for n, k in ranks.items())
        assert used <= budget
        for n, k in ranks.items():  # greedy stops only when no layer can grow within the budget
            m, nn_ = shapes[n]
            cap = min(m, nn_, (m * nn_ - 1) // (m + nn_))
            assert k == cap or m + nn_ > budget - used


def test_budget_too_small_is_config_error():
    with pytest.raises(ConfigError, match="budget"):
        plan_ranks(_net(), LowRankHparams(budget=10))


def test_unprofitable_layers_stay_dense():
    res = low_rank(_net(), LowRankHparams(rank=4, layers="all"))  # conv 6x9 at rank 4: 60 >= 54 weights
    by = {r.name: r for r in res.layers}
    assert by["0"].rank is None and isinstance(res.model[0], nn.Conv2d)
    assert by["0"].params_after == by["0"].params_before and by["0"].error == 0
    assert isinstance(res.model[3], Factorized)


@pytest.mark.parametrize("kwargs,match", [
    (dict(energy=0.0), "energy"), (dict(energy=1.5), "energy"), (dict(), "exactly one"),
    (dict(energy=0.9, rank=3), "exactly one"), (dict(ratio=0.5), "ratio"), (dict(rank=0), "rank"),
    (dict(budget=-5), "budget"), (dict(energy=0.9, finetune="2"), "steps"),
])
def test_bad_hparams(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        LowRankHparams(**kwargs)


def test_rank_above_min_dim_fails_before_any_change():
    net = _net()
    with pytest.raises(ConfigError, match="rank 5 is outside"):
        low_rank(net, LowRankHparams(rank=5, layers="3,5"), inplace=True)  # fc 5 is 4 x 40
    assert isinstance(net[3], nn.Linear) and isinstance(net[5], nn.Linear)


@pytest.mark.parametrize("layers", ["nope", "1", "linear_typo,3"])
def test_bad_layer_selection(layers):
    with pytest.raises(ConfigError):
        plan_ranks(_net(), LowRankHparams(rank=1, layers=layers))


def test_finetune_needs_data():
    with pytest.raises(ConfigError, match="needs data"):
        low_rank(_net(), LowRankHparams(rank=2, finetune="1ep"))


def test_apply_ranks_rebuilds_a_loadable_skeleton():
    model = build_model("lenet300", (1, 8, 8), 4, seed=0)
    res = low_rank(model, LowRankHparams(ratio=3.0))
    skeleton, _ = apply_ranks(build_model("lenet300", (1, 8, 8), 4, seed=1), res.ranks)
    skeleton.load_state_dict(res.model.state_dict())  # same structure, same names
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(skeleton(x), res.model(x))
    assert res.model.netpress_spec["low_rank"] == res.ranks


def test_finetune_recovers_accuracy_and_plot(tmp_path):
    data = load_data("synthetic")
    model = build_model("lenet300", data.input_shape, data.num_classes, seed=0)
    from netpress.train import train
    train(model, data, TrainingHparams(steps="2ep"), device="cpu", progress=False)
    res = low_rank(model, LowRankHparams(rank=3, finetune="2ep"), data=data, device="cpu", progress=False,
                   spectrum_png=tmp_path / "s.png")
    assert res.finetune is not None and res.finetune.iterations > 0
    assert res.finetune.final_test_accuracy > 0.9
    assert evaluate(res.model, data.test).accuracy == pytest.approx(res.finetune.final_test_accuracy)
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert evaluate(model, data.test).accuracy > 0.9  # the original is intact
