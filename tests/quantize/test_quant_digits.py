"""Accuracy after quantization on sklearn digits, where (unlike the synthetic blobs, on which 1-bit k-means keeps
0.96) too few levels visibly hurt: each threshold below would fail for a broken method or a too-coarse grid."""
from __future__ import annotations

import copy

import pytest
import torch

from netpress.data import load_data
from netpress.models import build_model
from netpress.quantize import (FinetuneHparams, PTQHparams, UniformSpec, finetune_centroids, ptq, quantize_weights,
                               share_weights)
from netpress.train import TrainingHparams, evaluate, train


@pytest.fixture(scope="module")
def digits_net():
    data = load_data("digits")
    net = build_model("lenet300", data.input_shape, data.num_classes, seed=0)
    train(net, data, TrainingHparams(steps="4ep", batch_size=50, lr=0.05), device="cpu")
    return net, data, evaluate(net, data.test).accuracy


def _acc(model, data):
    return evaluate(model, data.test).accuracy


def test_kmeans_sharing_keeps_accuracy_at_4_bits_and_visibly_loses_it_at_1(digits_net):
    net, data, float_acc = digits_net
    acc = {b: _acc(share_weights(copy.deepcopy(net), b), data) for b in (1, 2, 4)}
    assert float_acc > 0.95
    assert acc[4] >= float_acc - 0.015
    assert acc[1] <= float_acc - 0.08  # the data set can tell a coarse (or broken) codebook apart
    assert acc[1] < acc[2] < acc[4] + 0.005


def test_centroid_finetuning_recovers_accuracy_at_1_bit(digits_net):
    net, data, _ = digits_net
    model = share_weights(copy.deepcopy(net), 1)
    before = _acc(model, data)
    finetune_centroids(model, data, FinetuneHparams(steps="2ep", lr=1e-2), progress=False, device="cpu")
    assert _acc(model, data) >= before + 0.04  # 0.84 -> 0.90 here


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_uniform_weights_keep_accuracy_at_4_bits_and_lose_it_at_2(digits_net, granularity):
    net, data, float_acc = digits_net
    four = _acc(quantize_weights(copy.deepcopy(net), UniformSpec(bits=4, granularity=granularity)), data)
    two = _acc(quantize_weights(copy.deepcopy(net), UniformSpec(bits=2, granularity=granularity)), data)
    assert four >= float_acc - 0.02 and two <= float_acc - 0.03


def test_ptq_w8a8_matches_float_and_w2a8_does_not(digits_net):
    net, data, float_acc = digits_net
    w8 = _acc(ptq(copy.deepcopy(net), data, PTQHparams(w_bits=8, a_bits=8)), data)
    w2 = _acc(ptq(copy.deepcopy(net), data, PTQHparams(w_bits=2, a_bits=8)), data)
    assert abs(w8 - float_acc) <= 0.01 and w2 <= float_acc - 0.03
