"""compute_masks / prune: exact sparsity, scopes, subsets of old masks, collapse guard, scores vs autograd, errors."""
import pytest
import torch
from torch import nn

from netpress.errors import ConfigError, UnknownNameError
from netpress.prune import (SCORES, Score, apply_masks, compute_masks, get_masks, magnitude_threshold_masks, prune,
                            sparsity)


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))


def zeros(masks):
    return sum(int((m == 0).sum()) for m in masks.values()), sum(m.numel() for m in masks.values())


@pytest.mark.parametrize("target", [0.0, 0.1, 0.5, 0.913, 0.99])
def test_global_sparsity_is_exact(target):
    masks = compute_masks(mlp(), target)
    z, n = zeros(masks)
    assert z == round(target * n)


def test_local_sparsity_exact_per_layer():
    masks = compute_masks(mlp(), 0.7, scope="local")
    for name, m in masks.items():
        assert int((m == 0).sum()) == round(0.7 * m.numel()), name


def test_ties_do_not_break_exactness():
    net = mlp()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(0.5)  # every score ties
    masks = compute_masks(net, 0.37, scope="local")
    for m in masks.values():
        assert int((m == 0).sum()) == round(0.37 * m.numel())


def test_global_ranks_by_magnitude_across_layers():
    net = mlp()
    masks = compute_masks(net, 0.5, allow_collapse=True)
    ws = torch.cat([dict(net.named_parameters())[k].reshape(-1) for k in masks])
    keep = torch.cat([m.reshape(-1) for m in masks.values()]).bool()
    assert ws[keep].abs().min() >= ws[~keep].abs().max()


def test_masks_are_subsets_and_already_pruned_count():
    net = mlp()
    prune(net, 0.5, scope="local")
    first = get_masks(net)
    with torch.no_grad():  # make pruned weights' originals large: they must stay pruned
        for m in net.modules():
            if hasattr(m, "parametrizations"):
                m.parametrizations.weight.original.add_(10.0)
    prune(net, 0.8, scope="local")
    second = get_masks(net)
    for k in first:
        assert torch.all(second[k] <= first[k])
        assert int((second[k] == 0).sum()) == round(0.8 * second[k].numel())
    assert abs(sparsity(net) - 0.8) < 1e-3


def test_layer_sparsity_and_exclude():
    net = mlp()
    masks = compute_masks(net, 0.8, layer_sparsity={"5.weight": 0.4}, exclude=["1.weight"])
    assert "1.weight" not in masks
    assert int((masks["5.weight"] == 0).sum()) == round(0.4 * 64)
    z = int((masks["3.weight"] == 0).sum())
    assert z == round(0.8 * 512)  # the only tensor left in the global ranking


def test_collapse_guard_keeps_every_layer():
    net = mlp()
    with torch.no_grad():
        net[5].weight.mul_(1e-4)  # global magnitude would remove this whole layer
    masks = compute_masks(net, 0.97)
    assert masks["5.weight"].sum() >= 1
    z, n = zeros(masks)
    assert z == round(0.97 * n)
    collapsed = compute_masks(net, 0.97, allow_collapse=True)
    assert collapsed["5.weight"].sum() == 0


def test_local_guard_never_empties_tensor():
    net = nn.Sequential(nn.Linear(1, 1))
    assert compute_masks(net, 0.9, scope="local")["0.weight"].sum() == 1


def test_prune_applies_in_place_and_names():
    net = mlp()
    out = prune(net, 0.6, names=["1.weight", "3.weight"], scope="local")
    assert out is net and set(get_masks(net)) == {"1.weight", "3.weight"}
    assert abs(sparsity(net, ["1.weight", "3.weight"]) - 0.6) < 1e-3


def direct_grads(net, batch):
    """Reference: gradient of the loss w.r.t. each plain weight, no netpress code."""
    net.eval()
    net.zero_grad()
    nn.functional.cross_entropy(net(batch[0]), batch[1]).backward()
    return {k: p.grad.clone() for k, p in net.named_parameters() if k.endswith("weight")}


def test_snip_and_taylor_equal_autograd(synthetic):
    net = mlp()
    from netpress.data import TensorData
    x, y = synthetic.train.x[:128], synthetic.train.y[:128]
    data = TensorData(x, y)
    g = direct_grads(net, (x, y))
    ref = {k: (g[k] * dict(net.named_parameters())[k]).abs().detach() for k in g}
    total = sum(v.sum() for v in ref.values())
    tensors = {f"{i}.weight": (net[i], "weight") for i in (1, 3, 5)}
    snip = SCORES.get("snip")().weight_scores(net, tensors, data)
    taylor = SCORES.get("taylor")(batch_size=128, num_batches=1).weight_scores(net, tensors, data)
    grad = SCORES.get("gradient")(batch_size=128, num_batches=1).weight_scores(net, tensors, data)
    for k in tensors:
        torch.testing.assert_close(snip[k], ref[k] / total)
        torch.testing.assert_close(taylor[k], ref[k])
        torch.testing.assert_close(grad[k], g[k].abs())


def test_taylor_on_masked_model_uses_effective_weights(synthetic):
    net = mlp()
    prune(net, 0.5)
    masks = get_masks(net)
    s = compute_masks(net, 0.6, score="taylor", data=synthetic)
    for k in masks:
        assert torch.all(s[k] <= masks[k])


def test_unit_scores_and_activation_scores(synthetic):
    net = mlp()
    l1 = SCORES.get("l1")().unit_scores(net, {"1.weight": (net[1], "weight")}, None)["1.weight"]
    torch.testing.assert_close(l1, net[1].weight.abs().sum(1).detach())
    masks = compute_masks(net, 0.5, score="l2", scope="local", names=["1.weight"])
    rows = masks["1.weight"].sum(1)
    assert set(rows.unique().tolist()) <= {0.0, 64.0}  # whole neurons
    x = synthetic.train.x[:256]
    pre = net[1](net[0](x)).detach()
    act = SCORES.get("activation")(batch_size=256, num_batches=1).unit_scores(net, {"1.weight": (net[1], "weight")}, synthetic)
    torch.testing.assert_close(act["1.weight"], pre.clamp_min(0).mean(0))
    apoz = SCORES.get("apoz")(batch_size=256, num_batches=1).unit_scores(net, {"1.weight": (net[1], "weight")}, synthetic)
    torch.testing.assert_close(apoz["1.weight"], 1 - (pre <= 0).float().mean(0))


def test_user_registered_score(registry_sandbox):
    class Smallest(Score):
        def weight_scores(self, model, tensors, data):
            return {n: -getattr(m, a).detach().abs() for n, (m, a) in tensors.items()}

    SCORES.register("test_smallest", Smallest)
    net = mlp()
    m = compute_masks(net, 0.5, score="test_smallest", scope="local", names=["1.weight"])["1.weight"].bool()
    w = net[1].weight.detach().abs()
    assert w[m].max() <= w[~m].min()


def test_threshold_mode():
    net = mlp()
    masks = magnitude_threshold_masks(net, 1.0)
    for name, m in masks.items():
        w = dict(net.named_parameters())[name].detach()
        torch.testing.assert_close(m, (w.abs() > w.std()).float())
    apply_masks(net, masks)
    again = magnitude_threshold_masks(net, 0.0)
    for k in masks:
        assert torch.all(again[k] <= masks[k])


@pytest.mark.parametrize("kwargs,err", [
    (dict(sparsity=1.0), ConfigError), (dict(sparsity=-0.1), ConfigError), (dict(sparsity="x"), ConfigError),
    (dict(sparsity=0.5, score="snip"), ConfigError), (dict(sparsity=0.5, score="nope"), UnknownNameError),
    (dict(sparsity=0.5, names=["nope.weight"]), ConfigError), (dict(sparsity=0.5, exclude=["nope.weight"]), ConfigError),
    (dict(sparsity=0.5, layer_sparsity={"nope.weight": 0.1}), ConfigError), (dict(sparsity=0.5, scope="x"), ConfigError),
    (dict(sparsity=0.5, layer_sparsity={"1.weight": 1.5}), ConfigError),
])
def test_bad_input(kwargs, err):
    with pytest.raises(err):
        compute_masks(mlp(), **kwargs)


def test_nothing_prunable():
    with pytest.raises(ConfigError, match="nothing prunable"):
        prune(nn.Sequential(nn.ReLU()), 0.5)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(first=st.floats(0, 0.9), second=st.floats(0, 0.95), scope=st.sampled_from(["global", "local"]),
       seed=st.integers(0, 5))
def test_exactness_property_with_existing_masks(first, second, scope, seed):
    net = mlp(seed)
    prune(net, first, scope=scope, allow_collapse=True)
    old = get_masks(net)
    masks = compute_masks(net, second, scope=scope, allow_collapse=True)
    for k in masks:
        assert torch.all(masks[k] <= old[k])
    if scope == "global":
        z, n = zeros(masks)
        assert z == max(round(second * n), zeros(old)[0])
    else:
        for k, m in masks.items():
            assert int((m == 0).sum()) == max(round(second * m.numel()), int((old[k] == 0).sum()))
