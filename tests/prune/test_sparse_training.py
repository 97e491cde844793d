"""SET / RigL updates against independent oracles: what is dropped, what is regrown, what is reset."""
import pytest
import torch
from torch import nn

from netpress.prune import get_masks, prune
from netpress.prune.sparse_training import SET, RigL


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))


def originals(model):
    return {n: model.get_submodule(n.rsplit(".", 1)[0]).parametrizations.weight.original for n in get_masks(model)}


def sparse_mlp(sparsity):
    """Randomly pruned; the dead originals get nonzero values, as those of weights a mask update dropped keep."""
    model = mlp()
    prune(model, sparsity, score="random", scope="local")
    masks = get_masks(model)
    with torch.no_grad():
        for n, p in originals(model).items():
            p[masks[n] == 0] = torch.randn(int((masks[n] == 0).sum()))
    return model


def dense_gradients(model, x, y):
    """Oracle: dL/dW of a plain (unparametrized) copy whose weights are the effective masked weights."""
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        for i in (1, 3):
            plain[i].weight.copy_(model[i].weight)
            plain[i].bias.copy_(model[i].bias)
    nn.functional.cross_entropy(plain(x), y).backward()
    return {f"{i}.weight": plain[i].weight.grad for i in (1, 3)}


def update(cb, model, optimizer=None):
    """One mask update at iteration 0 (largest drop fraction); returns (old masks, new masks, old originals)."""
    old, w = get_masks(model), {n: p.detach().clone() for n, p in originals(model).items()}
    cb.on_step_end(0, model, optimizer or torch.optim.SGD(model.parameters(), lr=0.1))
    return old, get_masks(model), w


@pytest.mark.parametrize("make", [lambda d: SET(every=1, end=10, drop_fraction=0.3),
                                  lambda d: RigL(d, every=1, end=10, drop_fraction=0.3)], ids=["set", "rigl"])
def test_drops_the_smallest_active_weights(synthetic, make):
    model = sparse_mlp(0.5)
    old, new, w = update(make(synthetic), model)
    for n in old:
        active = old[n] > 0
        dropped, kept = active & (new[n] == 0), active & (new[n] > 0)
        k = int(0.3 * int(active.sum()))
        assert int(dropped.sum()) == k and int(new[n].sum()) == int(old[n].sum())
        assert w[n].abs()[dropped].max() <= w[n].abs()[kept].min(), n


def test_rigl_regrows_where_the_dense_gradient_is_largest(synthetic):
    model = sparse_mlp(0.8)  # dead originals hold random values: ranking them by |w| would pick others
    grads = dense_gradients(model, synthetic.train.x[:128], synthetic.train.y[:128])
    old, new, w = update(RigL(synthetic, every=1, end=10, drop_fraction=0.3, batch_size=128), model)
    for n in old:
        grown, dead = (new[n] > 0) & (old[n] == 0), (new[n] == 0) & (old[n] == 0)
        g = grads[n].abs()
        assert int(grown.sum()) == int(0.3 * int(old[n].sum()))
        assert g[grown].min() >= g[dead].max() - 1e-7, n


def test_set_regrows_at_random_from_the_seed(synthetic):
    picks = []
    for seed in (0, 0, 1):
        model = sparse_mlp(0.8)
        old, new, _ = update(SET(every=1, end=10, seed=seed), model)
        picks.append(torch.cat([((new[n] > 0) & (old[n] == 0)).reshape(-1) for n in old]))
    assert torch.equal(picks[0], picks[1]) and not torch.equal(picks[0], picks[2])


@pytest.mark.parametrize("cls", ["set", "rigl"])
def test_regrown_weights_and_their_optimizer_state_start_at_zero(synthetic, cls):
    model = sparse_mlp(0.8)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for p in model.parameters():  # moments everywhere, as after dense training
        opt.state[p] = {"step": torch.tensor(5.0), "exp_avg": torch.ones_like(p), "exp_avg_sq": torch.ones_like(p)}
    cb = SET(every=1, end=10) if cls == "set" else RigL(synthetic, every=1, end=10)
    old, new, w = update(cb, model, opt)
    for n, p in originals(model).items():
        grown = (new[n] > 0) & (old[n] == 0)
        assert grown.any() and torch.all(w[n][grown] != 0)
        assert torch.all(p[grown] == 0) and torch.all(model.get_submodule(n[:-7]).weight[grown] == 0)
        for key in ("exp_avg", "exp_avg_sq"):
            state = opt.state[p][key]
            assert torch.all(state[grown] == 0) and torch.all(state[~grown] == 1), key
        kept = (new[n] > 0) & ~grown
        assert torch.equal(p[kept], w[n][kept])  # surviving weights untouched


def test_drop_fraction_decays_as_a_cosine_to_zero_at_end(synthetic):
    cb = SET(every=1, end=40, drop_fraction=0.4)
    for t in (0, 10, 20, 30, 40):
        assert cb.fraction(t) == pytest.approx(0.2 * (1 + torch.cos(torch.tensor(t / 40 * torch.pi)).item()), abs=1e-6)
    model = sparse_mlp(0.5)
    old = get_masks(model)
    cb.on_step_end(20, model, torch.optim.SGD(model.parameters(), lr=0.1))  # halfway: 0.2 of the active weights
    new = get_masks(model)
    for n in old:
        assert int(((old[n] > 0) & (new[n] == 0)).sum()) == int(0.2 * int(old[n].sum()))
    cb.on_step_end(40, model, None)  # at ``end``: no more updates
    assert all(torch.equal(get_masks(model)[n], new[n]) for n in new)
