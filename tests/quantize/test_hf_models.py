"""A tiny Hugging Face BERT end to end: default selection covers embeddings, every method's file round trip is
bit-identical in a freshly constructed model, bias correction runs on [batch, seq, features] activations."""
from __future__ import annotations

import pytest
import torch

import netpress
from netpress.data.base import TensorData
from netpress.quantize import PTQHparams, activation_quantizers, export_codes, ptq, share_weights
from netpress.quantize.uniform import UniformSpec, quantize_weights

transformers = pytest.importorskip("transformers")
CONFIG = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def bert(seed=0):
    torch.manual_seed(seed)
    return transformers.BertModel(transformers.BertConfig(**CONFIG)).eval()


def ids(n=12, seq=9, seed=0):
    return torch.randint(0, 100, (n, seq), generator=torch.Generator().manual_seed(seed))


def same_outputs(a, b):
    x = ids(4, seed=5)
    with torch.no_grad():
        return torch.equal(a(x).last_hidden_state, b(x).last_hidden_state)


def test_share_weights_covers_embeddings_and_round_trips(tmp_path):
    model = share_weights(bert(), 4, iterations=10)
    names = set(export_codes(model))
    assert {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"} <= names
    assert not any("LayerNorm" in n or n.endswith("bias") for n in names)
    netpress.save(model, tmp_path / "k.netp")
    assert same_outputs(netpress.load(tmp_path / "k.netp", model=bert(1)), model)


def test_per_group_uniform_round_trips(tmp_path):
    model = quantize_weights(bert(), UniformSpec(bits=4, granularity="group", axis=1, group_size=16))
    netpress.save(model, tmp_path / "g.netp")
    assert same_outputs(netpress.load(tmp_path / "g.netp", model=bert(1)), model)


def test_ptq_w8a8_with_bias_correction_round_trips_bit_identically(tmp_path):
    data = TensorData(ids(), torch.zeros(12, dtype=torch.long))
    model = ptq(bert(), data, PTQHparams(w_bits=8, a_bits=8, bias_correction=True, calibration_examples=12))
    assert "embeddings.word_embeddings" not in activation_quantizers(model)  # integer ids are not quantized
    assert "encoder.layer.0.attention.self.query" in activation_quantizers(model)
    netpress.save(model, tmp_path / "p.netp")
    fresh = netpress.load(tmp_path / "p.netp", model=bert(1))
    assert set(activation_quantizers(fresh)) == set(activation_quantizers(model))
    assert same_outputs(fresh, model)
