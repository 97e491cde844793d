"""Selectors through the quantize/prune APIs: embeddings by default, unknown keys fail before any change."""
import copy

import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.prune import prune
from netpress.quantize import export_codes, share_weights
from netpress.quantize.ptq import PTQHparams, ptq
from netpress.quantize.uniform import UniformSpec, quantize_weights


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(40, 16), nn.Linear(16, 16), nn.LayerNorm(16), nn.Linear(16, 4))


def same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_share_weights_covers_embeddings_by_default():
    model = share_weights(net(), 3)
    assert set(export_codes(model)) == {"0.weight", "1.weight", "3.weight"}
    assert len(torch.unique(model[0].weight)) <= 8


def test_bits_by_pattern():
    model = share_weights(net(), {"0.weight": 2, "re:[13]\\.weight": 4})
    codes = export_codes(model)
    assert (codes["0.weight"].bits, codes["1.weight"].bits, codes["3.weight"].bits) == (2, 4, 4)


@pytest.mark.parametrize("call, fragment", [
    (lambda m: share_weights(m, {"banana": 4, "*": 5}), "'banana'"),
    (lambda m: share_weights(m, 4, names=["0.wieght"]), "0.weight"),
    (lambda m: share_weights(m, 4, exclude=["embedding"]), "'embedding'"),
    (lambda m: quantize_weights(m, UniformSpec(bits=4), names=["re:.*attention.*"]), "attention"),
    (lambda m: quantize_weights(m, {"banana": UniformSpec(bits=4)}), "'banana'"),
    (lambda m: quantize_weights(m, {"3.weight": UniformSpec(bits=4)}, names=["Linear"]), "nothing given for '1.weight'"),
    (lambda m: ptq(m, None, PTQHparams(a_bits=0), names=["Conv*"]), "chooses no tensor"),
    (lambda m: prune(m, 0.5, names=["1.wieght"]), "closest: 1.weight"),
])
def test_unknown_selection_fails_before_any_change(call, fragment):
    model = net()
    before = copy.deepcopy(model)
    with pytest.raises(ConfigError, match=fragment):
        call(model)
    assert same(model, before) and not export_codes(model)
