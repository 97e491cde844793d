"""Data-driven scores on an already pruned model, against autograd on a plain copy of the effective weights."""
import pytest
import torch
from torch import nn

from netpress.data import TensorData
from netpress.prune import SCORES, get_masks, prune


def pruned_mlp():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    prune(net, 0.6, score="random", scope="local")
    with torch.no_grad():  # the originals behind the masks hold values (a dropped weight keeps its own)
        for m in net.modules():
            if hasattr(m, "parametrizations"):
                orig, mask = m.parametrizations.weight.original, m.parametrizations.weight[0].mask
                orig[mask == 0] = torch.randn(int((mask == 0).sum()))
    return net


def oracle(net, x, y, batch):
    """Mean over batches of dL/dW and the effective W, from an unparametrized copy."""
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    plain.load_state_dict({k: v.detach() for k, v in zip(plain.state_dict(), _effective(net))})
    plain.eval()
    grads = {}
    for start in range(0, len(x), batch):
        plain.zero_grad()
        nn.functional.cross_entropy(plain(x[start:start + batch]), y[start:start + batch]).backward()
        for i in (1, 3, 5):
            grads[f"{i}.weight"] = grads.get(f"{i}.weight", 0) + plain[i].weight.grad.clone()
    n = len(range(0, len(x), batch))
    return {k: g / n for k, g in grads.items()}, {f"{i}.weight": plain[i].weight.detach() for i in (1, 3, 5)}


def _effective(net):
    return [t for i in (1, 3, 5) for t in (net[i].weight, net[i].bias)]


@pytest.mark.parametrize("name", ["taylor", "gradient", "snip"])
def test_scores_of_a_masked_model_use_the_effective_weights(synthetic, name):
    net = pruned_mlp()
    x, y = synthetic.train.x[:192], synthetic.train.y[:192]
    num_batches = 1 if name == "snip" else 3
    g, w = oracle(net, x, y, 64)
    if name == "snip":
        g, w = oracle(net, x[:64], y[:64], 64)
    tensors = {f"{i}.weight": (net[i], "weight") for i in (1, 3, 5)}
    got = SCORES.get(name)(batch_size=64, num_batches=num_batches).weight_scores(net, tensors, TensorData(x, y))
    ref = {k: (g[k] * w[k]).abs() if name != "gradient" else g[k].abs() for k in g}
    if name == "snip":
        total = sum(v.sum() for v in ref.values())
        ref = {k: v / total for k, v in ref.items()}
    masks = get_masks(net)
    for k in tensors:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-7)
        if name != "gradient":
            assert torch.all(got[k][masks[k] == 0] == 0)  # a pruned weight costs nothing to remove again
        else:
            assert got[k][masks[k] == 0].abs().sum() > 0  # the dense gradient reaches pruned positions


@pytest.mark.parametrize("scope", ["local", "global"])
def test_a_score_that_rates_pruned_weights_highly_cannot_revive_them(scope):
    """Random scores ignore the mask, so already pruned weights often outrank live ones: they must stay pruned."""
    from netpress.prune import compute_masks
    from netpress.prune.scores import Random

    net = pruned_mlp()
    old = get_masks(net)
    new = compute_masks(net, 0.7, score=Random(seed=5), scope=scope)
    for k in old:
        assert torch.all(new[k] <= old[k]), k
    total = sum(m.numel() for m in new.values())
    assert sum(int((m == 0).sum()) for m in new.values()) == round(0.7 * total)
