import pytest
import torch

from netpress.errors import ConfigError
from netpress.models import MODELS, ModelHparams, build_model, model_from_spec


def test_lenet5_is_caffe_lenet():
    net = build_model("lenet5", (1, 28, 28), 10)
    assert sum(p.numel() for p in net.parameters()) == 431_080
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_lenet300_sizes():
    net = build_model("lenet300", (1, 28, 28), 10)
    assert [m.weight.shape for m in net.modules() if isinstance(m, torch.nn.Linear)] == [
        (300, 784), (100, 300), (10, 100)]


@pytest.mark.parametrize("name", ["conv2", "conv4", "conv6"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_conv_nets_take_any_input(name, shape):
    net = build_model(name, shape, 7)
    assert net(torch.zeros(2, *shape)).shape == (2, 7)


def test_init_seed_is_reproducible_and_selectable():
    a = build_model(ModelHparams("lenet300", init="glorot_uniform"), (1, 8, 8), 4, seed=3)
    b = build_model(ModelHparams("lenet300", init="glorot_uniform"), (1, 8, 8), 4, seed=3)
    c = build_model(ModelHparams("lenet300", init="kaiming_normal"), (1, 8, 8), 4, seed=3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.fc_out.weight, c.fc_out.weight)
    bound = (6 / (100 + 4)) ** 0.5  # Glorot uniform bound of the output layer
    assert a.fc_out.weight.abs().max() <= bound


def test_spec_rebuilds_same_architecture():
    net = build_model("lenet5", (3, 32, 32), 5, seed=0)
    again = model_from_spec(net.netpress_spec)
    again.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(net(x), again(x))


def test_unknown_names_list_known():
    with pytest.raises(ConfigError, match="known: conv2, conv4, conv6, lenet300, lenet5"):
        ModelHparams("resnet9000")
    with pytest.raises(ConfigError, match="unknown init"):
        ModelHparams("lenet300", init="ones")
    assert "lenet5" in MODELS


def test_seeded_build_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model("lenet300", (1, 8, 8), 4, seed=7)
    assert torch.equal(torch.rand(3), expected)
