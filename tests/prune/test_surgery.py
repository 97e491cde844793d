"""Structured surgery: equivalence with the masked model on an MLP, a CNN with BatchNorm, residual nets,
a torchvision-style ResNet and a transformer block; errors naming unsupported modules; save/reload."""
import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.models import build_model
from netpress.prune import get_masks, prune
from netpress.prune.graph import DependencyGraph, SurgeryError
from netpress.prune.surgery import load_thinned, plan_structured, prune_structured, save_thinned, thin, verify


def params(m):
    return sum(p.numel() for p in m.parameters())


def randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


def check_equivalent(model, x, fraction=0.5, **kw):
    res = prune_structured(model, fraction, x, **kw)
    model.eval(), res.model.eval(), res.masked.eval()
    torch.testing.assert_close(res.model(x), res.masked(x), atol=1e-4, rtol=1e-4)
    assert params(res.model) < params(model)
    assert not get_masks(res.model)
    return res


def test_mlp_lenet300_halves_neurons():
    torch.manual_seed(0)
    net = build_model("lenet300", (1, 28, 28), 10, seed=0)
    x = torch.randn(4, 1, 28, 28)
    res = check_equivalent(net, x, 0.5)
    assert res.model.features[0].out_features == 150 and res.model.features[2].out_features == 50
    assert res.model.fc_out.out_features == 10  # the output layer is never thinned
    assert "fc_out" in res.plan.skipped


def test_masked_equals_removed_channels_by_hand():
    """Reference without netpress: drop the 2 lowest-L1 hidden neurons of a tiny MLP by hand."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x = torch.randn(7, 5)
    keep = net[0].weight.abs().sum(1).argsort(descending=True)[:2].sort().values
    ref = nn.functional.linear(torch.relu(nn.functional.linear(x, net[0].weight[keep], net[0].bias[keep])),
                               net[2].weight[:, keep], net[2].bias)
    res = prune_structured(net, 0.5, x)
    torch.testing.assert_close(res.model(x), ref)


def test_cnn_with_batchnorm_and_flatten():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 12, 3, bias=False), nn.BatchNorm2d(12), nn.ReLU(),
                        nn.Flatten(), nn.Linear(12 * 4 * 4, 20), nn.ReLU(), nn.Linear(20, 3))
    randomise_bn(net)
    x = torch.randn(3, 1, 14, 14)
    res = check_equivalent(net, x, 0.5)
    assert res.model[0].out_channels == 4 and res.model[1].num_features == 4 and res.model[4].in_channels == 4
    assert res.model[8].in_features == 6 * 16


def test_lenet5_registry_model_and_save_reload(tmp_path):
    net = build_model("lenet5", (1, 28, 28), 10, seed=0)
    x = torch.randn(2, 1, 28, 28)
    res = check_equivalent(net, x, 0.5)
    path = save_thinned(res.model, tmp_path / "small.safetensors")
    back = load_thinned(path)
    torch.testing.assert_close(back(x), res.model(x))
    assert params(back) == params(res.model)
    plain = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    small = prune_structured(plain, 0.5, torch.randn(2, 4)).model
    save_thinned(small, tmp_path / "plain.safetensors")
    with pytest.raises(ConfigError, match="spec"):
        load_thinned(tmp_path / "plain.safetensors")
    again = load_thinned(tmp_path / "plain.safetensors", model=nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)))
    torch.testing.assert_close(again(torch.ones(1, 4)), small(torch.ones(1, 4)))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(6, 8)
        self.a1, self.a2 = nn.Linear(8, 16), nn.Linear(16, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = h + self.a2(torch.relu(self.a1(h)))
        return self.head(torch.relu(h))


def test_small_residual_net_couples_add():
    torch.manual_seed(0)
    net = Residual()
    x = torch.randn(5, 6)
    g = DependencyGraph(net, x)
    coupled = [grp for grp in g.groups().values() if set(grp.producers) == {"stem", "a2"}]
    assert len(coupled) == 1 and {c for c, _ in coupled[0].consumers} == {"a1", "head"}
    res = check_equivalent(net, x, 0.5)
    assert res.model.stem.out_features == res.model.a2.out_features == 4 and res.model.a1.out_features == 8


# a torchvision-style ResNet written here (BasicBlock with downsample, in-place add, adaptive pool, flatten)
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_torchvision_style_resnet():
    torch.manual_seed(0)
    net = randomise_bn(TinyResNet())
    x = torch.randn(2, 3, 16, 16)
    res = check_equivalent(net, x, 0.5)
    m = res.model
    assert m.conv1.out_channels == 4 and m.layer1[0].conv1.out_channels == 4
    assert m.layer2[0].downsample[0].out_channels == m.layer2[1].conv2.out_channels == 8 and m.fc.in_features == 8
    prune(net, 0.5)  # unstructured masks also work on it
    assert net(x).shape == (2, 5)


class Block(nn.Module):
    """transformers-style encoder block: q/k/v/out projections, LayerNorm, GELU MLP."""

    def __init__(self, d=16, heads=2, hidden=32):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.act, self.fc2 = nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        split = lambda z: z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q_proj(h)), split(self.k_proj(h)), split(self.v_proj(h))
        att = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        x = x + self.out_proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


def test_transformer_block_prunes_mlp_and_names_blockers():
    torch.manual_seed(0)
    net = Block()
    x = torch.randn(2, 5, 16)
    res = check_equivalent(net, x, 0.5)
    assert res.model.fc1.out_features == 16 and res.model.fc2.in_features == 16
    assert res.model.q_proj.out_features == 16  # attention projections are left whole
    with pytest.raises(SurgeryError, match="unsupported"):
        prune_structured(net, 0.5, x, names=["q_proj"])
    with pytest.raises(SurgeryError, match="LayerNorm|output|cannot trace"):
        prune_structured(net, 0.5, x, names=["out_proj"])
    prune(net, 0.7, scope="local")  # unstructured works on every projection
    assert net(x).shape == x.shape


class Custom(nn.Module):
    def forward(self, x):
        return x * 2


def test_unsupported_module_is_named():
    net = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2))
    with pytest.raises(SurgeryError, match="Sigmoid"):
        prune_structured(net, 0.5, torch.randn(2, 4), names=["0"])
    with pytest.raises(SurgeryError, match="no layer can be pruned"):
        prune_structured(net, 0.5, torch.randn(2, 4))
    cat = nn.Sequential(nn.Linear(4, 8), nn.LSTM(8, 3))
    with pytest.raises(SurgeryError, match="LSTM"):
        prune_structured(cat, 0.5, torch.randn(2, 4), names=["0.weight"])
    with pytest.raises(ConfigError, match="unknown layer"):
        prune_structured(net, 0.5, torch.randn(2, 4), names=["nope"])


def test_verify_names_the_broken_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    x = torch.randn(3, 4)
    res = prune_structured(net, 0.5, x)
    with torch.no_grad():
        res.model[2].weight[0, 0] += 1.0  # corrupt the second layer
    with pytest.raises(SurgeryError, match=r"layer 2 \(Linear"):
        verify(res.masked, res.model, res.plan, x)


def test_structured_after_unstructured_masks_and_activation_score(synthetic):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))
    prune(net, 0.5)
    x = synthetic.test.x[:8]
    res = check_equivalent(net, x, 0.25, score="apoz", data=synthetic)
    assert res.model[1].out_features == 12
    with pytest.raises(ConfigError, match="needs data"):
        plan_structured(net, x, 0.5, score="activation")
