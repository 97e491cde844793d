"""ECSQ quantization-aware training: the forward value is the brute-force Lagrangian level of each nonzero weight
(zeros stay zero), gradients pass straight through at nonzero positions only, refits equal a fresh ECSQ, training
lowers the quantized model's loss, a run resumed from its checkpoint is bit-identical, and finishing leaves the
trained float weights."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from netpress.data import load_data
from netpress.errors import ConfigError
from netpress.models import build_model
from netpress.quantize import export_codes
from netpress.quantize.ecsq import ecsq, ecsq_weights
from netpress.quantize.ecsq_qat import ECSQTrainWeight, RefitLevels, ecsq_qat, finish_qat, refit_levels
from netpress.train import TrainingHparams, train


def _sparse(shape, density=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    return w * (torch.rand(shape, generator=g) < density)


def _brute(w: torch.Tensor, q: ECSQTrainWeight) -> torch.Tensor:
    """Each nonzero weight's level by trying every level in use."""
    used = q.probs > 0
    c, p = q.levels[used].double().numpy(), q.probs[used].double().numpy()
    x = w.double().numpy()[..., None]
    cost = (x - c) ** 2 + q.lam * -np.log2(p)
    return torch.from_numpy(np.where(w.numpy() != 0, c[cost.argmin(-1)], 0.0)).float()


@pytest.mark.parametrize("lam", [0.0, 0.05, 0.5])
def test_forward_is_the_brute_force_lagrangian_level_and_keeps_zeros(lam):
    w = _sparse((40, 30))
    q = ECSQTrainWeight(w, bits=4, lam=lam)
    moved = w + 0.3 * torch.randn(w.shape) * (w != 0)  # weights the levels were not fitted on
    for x in (w, moved):
        assert torch.allclose(q(x), _brute(x, q), atol=1e-6)
        assert bool((q(x)[w == 0] == 0).all())
    assert len(torch.unique(q(w)[w != 0])) <= 16


def test_gradient_passes_straight_through_at_nonzero_positions_only():
    w = _sparse((20, 10)).requires_grad_(True)
    q = ECSQTrainWeight(w.detach(), bits=3, lam=0.1)
    g = torch.randn(w.shape)
    (q(w) * g).sum().backward()
    assert torch.equal(w.grad, g * (w.detach() != 0))


def test_refit_equals_a_fresh_ecsq_of_the_current_nonzero_weights():
    w = _sparse((50, 20))
    q = ECSQTrainWeight(w, bits=4, lam=0.05)
    moved = w * 1.7
    q.refit(moved)
    want = ecsq(moved[w != 0], 4, 0.05)
    assert torch.equal(q.levels, want.centroids) and torch.equal(q.probs, want.probs)


def test_codes_decode_to_the_forward_value_exactly():
    net = build_model("lenet300", (1, 8, 8), 10, seed=0)
    ecsq_qat(net, bits=4, lam=0.1, relative=True)
    for name, codes in export_codes(net).items():
        module = net.get_submodule(name.rsplit(".", 1)[0])
        assert torch.equal(codes.decode(), module.weight), name
        assert codes.codebook.numel() == len(torch.unique(codes.indices[codes.indices >= 0]))


def _digits():
    data = load_data("digits")
    net = build_model("lenet300", data.input_shape, data.num_classes, seed=0)
    train(net, data, TrainingHparams(steps="2ep", batch_size=64, lr=0.05), device="cpu")
    with torch.no_grad():  # prune half of every weight
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(m.weight.abs() > m.weight.abs().median())
    return net, data


def _loss(net, data):
    with torch.no_grad():
        return float(nn.functional.cross_entropy(net(data.train.x), data.train.y))


def test_training_lowers_the_quantized_models_loss_and_keeps_the_mask():
    net, data = _digits()
    zeros = {n: m.weight == 0 for n, m in net.named_modules() if isinstance(m, nn.Linear)}
    ecsq_qat(net, bits=3, lam=0.5, relative=True)  # aggressive: few levels
    before = _loss(net, data)
    hp = TrainingHparams(steps="60it", batch_size=64, lr=0.01)
    train(net, data, hp, device="cpu", callbacks=[RefitLevels(every=20)])
    assert _loss(net, data) < 0.9 * before
    for n, m in net.named_modules():
        if n in zeros:
            assert bool((m.weight[zeros[n]] == 0).all())
    trained = {n: net.get_submodule(n).parametrizations.weight.original.detach().clone() for n in zeros}
    with torch.no_grad():  # a pruned float that moved (e.g. under a custom optimizer) is still dropped
        net.get_submodule("features.0").parametrizations.weight.original[zeros["features.0"]] = 1.0
    assert finish_qat(net) == [f"{n}.weight" for n in zeros]
    for n in zeros:
        w = net.get_submodule(n).weight
        assert torch.equal(w, trained[n] * ~zeros[n])  # the trained float weights, pruned zeros exact
    ecsq_weights(net, 3, 0.5, relative=True)  # the rounding that follows takes plain float weights


def test_refit_callback_runs_at_its_iterations_and_a_resumed_run_is_bit_identical(tmp_path, monkeypatch):
    from netpress.quantize import ecsq_qat as module

    net, data = _digits()
    ecsq_qat(net, bits=3, lam=0.2, relative=True)
    calls = []
    real = module.refit_levels
    monkeypatch.setattr(module, "refit_levels", lambda m: calls.append(1) or real(m))
    hp = TrainingHparams(steps="40it", batch_size=64, lr=0.01, eval_every="10it")
    whole = copy.deepcopy(net)
    train(whole, data, hp, device="cpu", callbacks=[RefitLevels(every=15)])
    assert len(calls) == 2  # iterations 15 and 30
    half = copy.deepcopy(net)
    train(half, data, hp.replace(steps="20it"), device="cpu", checkpoint_dir=tmp_path,
          callbacks=[RefitLevels(every=15)])
    resumed = copy.deepcopy(net)  # a fresh process: same start, the checkpoint on disk
    train(resumed, data, hp, device="cpu", checkpoint_dir=tmp_path, callbacks=[RefitLevels(every=15)])
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert refit_levels(resumed) == 3


def test_bad_settings_are_errors_before_any_change():
    net = build_model("lenet300", (1, 8, 8), 10, seed=0)
    before = copy.deepcopy(net.state_dict())
    for kwargs, message in [({"bits": 0, "lam": 0.1}, "bits"), ({"bits": 4, "lam": -1.0}, "lam"),
                            ({"bits": 4, "lam": float("nan")}, "lam")]:
        with pytest.raises(ConfigError, match=message):
            ecsq_qat(net, **kwargs)
    with pytest.raises(ConfigError, match="every"):
        RefitLevels(every=0)
    ecsq_weights(net, 4, 0.1, names=["fc_out.weight"])
    with pytest.raises(ConfigError, match="already quantized"):
        ecsq_qat(net, bits=4, lam=0.1)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items() if k in before)
