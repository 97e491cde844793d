"""Early-Bird tickets: planted mask stabilisation is detected exactly; global masks and distances vs numpy."""
import numpy as np
import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.lottery.early_bird import EarlyBird, global_mask, mask_distance
from netpress.prune import apply_masks


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20), nn.ReLU(), nn.Linear(20, 3))


def _set(net, score, gen, planted=None, scale=1.0):
    """Epoch weights: fresh random magnitudes, or the planted ones scaled (same ranking, new values)."""
    with torch.no_grad():
        params = [net[1].weight] if score == "bn" else [net[0].weight, net[3].weight]
        for i, p in enumerate(params):
            p.copy_(planted[i] * scale if planted is not None else torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("score", ["weight", "bn"])
@pytest.mark.parametrize("k,window", [(4, 3), (7, 2)])
def test_planted_stable_mask_detected_at_k(score, k, window):
    net, gen = _net(), torch.Generator().manual_seed(1)
    shapes = [net[1].weight.shape] if score == "bn" else [net[0].weight.shape, net[3].weight.shape]
    planted = [torch.randn(s, generator=gen) for s in shapes]
    eb = EarlyBird(sparsity=0.5, window=window, eps=0.05, score=score)
    fired = []
    for epoch in range(k + window + 4):
        _set(net, score, gen, planted if epoch >= k else None, scale=1.0 + 0.1 * epoch)
        fired.append(eb.observe(net))
    assert eb.stable_since == k and eb.detected_at == k + window
    assert fired.index(True) == k + window and all(fired[k + window:])
    assert all(d > 0.05 for d in eb.distances[:k])  # random epochs really moved the mask
    names = ["1.weight"] if score == "bn" else ["0.weight", "3.weight"]
    want = global_mask(dict(zip(names, planted)), 0.5)
    assert eb.ticket.keys() == want.keys() and all(torch.equal(eb.ticket[n], want[n]) for n in names)
    apply_masks(net, eb.ticket)  # the ticket is an ordinary mask dict


def test_global_mask_and_distance_match_numpy():
    gen = torch.Generator().manual_seed(3)
    t = {"a": torch.randn(7, 5, generator=gen), "b": torch.randn(11, generator=gen)}
    for sparsity in (0.0, 0.3, 0.8):
        m = global_mask(t, sparsity)
        flat = np.abs(np.concatenate([t["a"].numpy().ravel(), t["b"].numpy().ravel()]))
        keep = flat.size - int(round(sparsity * flat.size))
        thr = np.sort(flat)[::-1][keep - 1]
        np.testing.assert_array_equal(np.concatenate([m["a"].numpy().ravel(), m["b"].numpy().ravel()]),
                                      (flat >= thr).astype(np.float32))
    m1, m2 = global_mask(t, 0.5), global_mask({"a": t["a"], "b": -0.2 * t["b"]}, 0.5)
    flat1 = np.concatenate([m1[n].numpy().ravel() for n in "ab"])
    flat2 = np.concatenate([m2[n].numpy().ravel() for n in "ab"])
    assert mask_distance(m1, m2) == pytest.approx(float(np.mean(flat1 != flat2)))
    assert mask_distance(m1, m2) > 0


def test_callback_observes_every_n_iterations():
    net = _net()
    eb = EarlyBird(sparsity=0.5, window=2, eps=0.01, every=3)
    for it in range(1, 13):
        eb.on_step_end(it, net, None)
    assert len(eb.distances) == 3  # observations at 3, 6, 9, 12
    assert eb.detected_at == 2  # unchanged weights: distances 0, 0 -> detected at the third observation
    assert eb.detected_iteration == 9


def test_bad_arguments():
    with pytest.raises(ConfigError):
        EarlyBird(sparsity=1.0)
    with pytest.raises(ConfigError):
        EarlyBird(sparsity=0.5, score="gradient")
    with pytest.raises(ConfigError):
        EarlyBird(sparsity=0.5, score="bn").observe(nn.Sequential(nn.Linear(2, 2)))
