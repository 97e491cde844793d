"""Tensor selection for any model: types, globs, regexes, size, include/exclude, errors naming close names."""
import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.prune.masks import prunable_tensors
from netpress.quantize.base import selected_tensors
from netpress.select import Selector, all_tensors, select_tensors


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.encoder = nn.ModuleList([nn.ModuleDict({"dense": nn.Linear(8, 8), "norm": nn.LayerNorm(8),
                                                     "conv": nn.Conv1d(8, 8, 3)}) for _ in range(2)])
        self.head = nn.Linear(8, 3)


def brute_force(model, keep):
    """Reference: walk named_parameters and keep what the predicate says."""
    mods = dict(model.named_modules())
    return [n for n, _ in model.named_parameters() if keep(n, mods[n.rpartition(".")[0]], n.rpartition(".")[2])]


def test_default_covers_linear_conv_embedding_weights_not_norms_or_biases():
    net = Tiny()
    want = brute_force(net, lambda n, m, a: a == "weight" and isinstance(m, (nn.Linear, nn.Conv1d, nn.Embedding)))
    assert list(select_tensors(net)) == want
    assert "emb.weight" in want and not any("norm" in n or "bias" in n for n in select_tensors(net))
    assert list(prunable_tensors(net)) == want == list(selected_tensors(net))


def test_by_type_glob_regex_size():
    net = Tiny()
    assert list(select_tensors(net, "Embedding")) == ["emb.weight"]
    assert list(select_tensors(net, "Conv*")) == ["encoder.0.conv.weight", "encoder.1.conv.weight"]
    assert list(select_tensors(net, "conv")) == ["encoder.0.conv.weight", "encoder.1.conv.weight"]
    assert list(select_tensors(net, "encoder.1.*")) == ["encoder.1.dense.weight", "encoder.1.conv.weight"]
    assert list(select_tensors(net, "re:.*dense\\.weight$")) == ["encoder.0.dense.weight", "encoder.1.dense.weight"]
    big = brute_force(net, lambda n, m, a: a == "weight" and not isinstance(m, nn.LayerNorm)
                      and getattr(m, a).numel() >= 100)
    assert list(select_tensors(net, Selector(min_numel=100))) == big
    assert list(select_tensors(net, "LayerNorm")) == ["encoder.0.norm.weight", "encoder.1.norm.weight"]


def test_exclude_and_module_name_patterns_and_explicit_names():
    net = Tiny()
    assert list(select_tensors(net, "encoder.0.dense")) == ["encoder.0.dense.weight"]  # module name
    got = select_tensors(net, ["Linear", "!head*"])
    assert list(got) == ["encoder.0.dense.weight", "encoder.1.dense.weight"]
    assert list(select_tensors(net, exclude=["re:encoder\\..*"])) == ["emb.weight", "head.weight"]
    assert list(select_tensors(net, ["head.bias", "encoder.0.norm.weight"])) == ["encoder.0.norm.weight", "head.bias"]
    module, attr = select_tensors(net, ["head.bias"])["head.bias"]
    assert module is net.head and attr == "bias"


def test_hf_conv1d_by_class_name():
    Conv1D = type("Conv1D", (nn.Module,), {})
    m = Conv1D()
    m.weight = nn.Parameter(torch.zeros(4, 6))
    net = nn.Sequential(m, nn.Linear(6, 2))
    assert list(select_tensors(net)) == ["0.weight", "1.weight"]
    assert list(select_tensors(net, "fc")) == ["0.weight", "1.weight"]


def test_parametrized_tensors_keep_plain_names():
    from netpress.prune.masks import apply_masks

    net = Tiny()
    apply_masks(net, {"head.weight": torch.ones(3, 8)})
    assert "head.weight" in select_tensors(net) and "head.weight" in all_tensors(net)
    assert not any("parametrizations" in n for n in all_tensors(net))


@pytest.mark.parametrize("spec, fragment", [
    ("encoder.*.attention.*", "encoder."), ("embeding.weight", "emb.weight"), ("re:.*banana", "matches no tensor; names: emb.weight"),
    ("Banana", "chooses no tensor"),
])
def test_nothing_matched_names_the_closest(spec, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        select_tensors(Tiny(), spec)
    assert spec.replace("re:", "") in str(info.value) or "chooses no tensor" in str(info.value)


def test_exclude_matching_nothing_is_an_error():
    with pytest.raises(ConfigError, match="'hed.weight'.*head.weight"):
        select_tensors(Tiny(), exclude=["hed.weight"])


def test_bad_selector_values():
    for kwargs in ({"types": "Linear"}, {"min_numel": -1}, {"include": ("re:(",)}):
        with pytest.raises(ConfigError):
            Selector(**kwargs)
    with pytest.raises(ConfigError, match="numel"):
        Selector.parse("numel>=x")


def test_parse():
    sel = Selector.parse("Linear, re:.*dense$ ,!*.output.*,numel>=1024")
    assert sel == Selector(types=("Linear",), include=("re:.*dense$",), exclude=("*.output.*",), min_numel=1024)
    assert Selector.parse("encoder.*").types == Selector().types
