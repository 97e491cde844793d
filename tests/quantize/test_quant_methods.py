"""The quantization entry point: typed options checked up front, dispatch by registry, byte accounting."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.quantize import METHODS, Codes, QuantizeHparams, export_codes, quantize_model, size_table


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3))


def test_every_method_is_registered():
    assert METHODS.names() == sorted(["kmeans", "uniform", "ptq", "qat", "binary", "ternary", "mixed", "ecsq",
                                      "soft-sharing"])


@pytest.mark.parametrize("kw,match", [
    ({"method": "magic"}, "unknown method 'magic'"),
    ({"method": "mixed"}, "budget_bytes > 0"),
    ({"method": "kmeans", "bits": 17}, "1 to 16"),
    ({"method": "uniform", "granularity": "group"}, "group_size"),
    ({"method": "kmeans", "finetune": "-2ep"}, "negative"),
])
def test_bad_options_fail_on_construction(kw, match):
    with pytest.raises(ConfigError, match=match):
        QuantizeHparams(**kw)


def test_kmeans_sizes_follow_the_closed_form():
    net = _net()
    quantize_model(net, QuantizeHparams(method="kmeans", bits=3, exclude=("2.weight",)))
    rows, total = size_table(export_codes(net))
    assert [r["layer"] for r in rows] == ["0.weight"]
    assert rows[0]["bytes"] == 120 * 3 / 8 + 4 * 8
    assert total == {"bytes": rows[0]["bytes"], "float_bytes": 480, "ratio": 480 / rows[0]["bytes"]}
    assert len(torch.unique(net[0].weight)) <= 8 and not any("2." in n for n in export_codes(net))


def test_uniform_per_channel_counts_a_scale_and_zero_point_per_channel():
    net = _net()
    quantize_model(net, QuantizeHparams(method="uniform", bits=4, granularity="channel"))
    rows, _ = size_table(export_codes(net))
    assert [r["bytes"] for r in rows] == [120 * 4 / 8 + 8 * 10, 30 * 4 / 8 + 8 * 3]


def test_binary_codes_cost_one_scale_per_table():
    c = Codes(torch.zeros(4, 5, dtype=torch.int64), torch.ones(4, 2), 1, 0, "binary")
    assert size_table({"w": c})[0][0]["bytes"] == 20 / 8 + 4 * 4
