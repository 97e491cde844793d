"""Distillation losses against hand computations, autograd and the CE limit."""
import math

import pytest
import torch
from torch.nn import functional as F

from netpress.data.base import Batch, TensorData
from netpress.distill import DistillationLoss, DistillHparams, kd_loss, logit_matching_loss
from netpress.errors import ConfigError

S = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
T = [[2.0, 1.0, 0.0], [0.5, 0.5, 1.0]]
Y = [1, 2]


def _softmax(row, t):
    e = [math.exp(v / t) for v in row]
    return [v / sum(e) for v in e]


def _hand_kd(s, t_logits, y, temp, alpha):
    """Plain-Python evaluation of alpha*CE + (1-alpha)*T^2*KL(p_t || p_s), averaged over rows."""
    total = 0.0
    for srow, trow, label in zip(s, t_logits, y):
        ce = -math.log(_softmax(srow, 1.0)[label])
        ps, pt = _softmax(srow, temp), _softmax(trow, temp)
        kl = sum(a * math.log(a / b) for a, b in zip(pt, ps))
        total += alpha * ce + (1 - alpha) * temp ** 2 * kl
    return total / len(s)


@pytest.mark.parametrize("temp,alpha", [(1.0, 0.5), (4.0, 0.1), (2.5, 0.0), (0.5, 1.0)])
def test_kd_loss_equals_hand_computation(temp, alpha):
    got = kd_loss(torch.tensor(S), torch.tensor(T), torch.tensor(Y), temp, alpha).item()
    assert got == pytest.approx(_hand_kd(S, T, Y, temp, alpha), rel=1e-6)


def test_logit_matching_equals_hand_computation():
    alpha = 0.3
    ce = sum(-math.log(_softmax(r, 1.0)[label]) for r, label in zip(S, Y)) / 2
    mse = sum((a - b) ** 2 for rs, rt in zip(S, T) for a, b in zip(rs, rt)) / 6
    got = logit_matching_loss(torch.tensor(S), torch.tensor(T), torch.tensor(Y), alpha).item()
    assert got == pytest.approx(alpha * ce + (1 - alpha) * mse, rel=1e-6)


def test_kd_gradient_matches_autograd_and_closed_form():
    torch.manual_seed(0)
    s = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 4, dtype=torch.float64)
    y = torch.randint(0, 4, (5,))
    temp, alpha = 3.0, 0.25
    assert torch.autograd.gradcheck(lambda z: kd_loss(z, t, y, temp, alpha), (s,))
    kd_loss(s, t, y, temp, alpha).backward()
    # closed form: alpha*(softmax(s)-onehot)/N + (1-alpha)*T*(softmax(s/T)-softmax(t/T))/N
    onehot = F.one_hot(y, 4).double()
    expected = (alpha * (s.detach().softmax(1) - onehot)
                + (1 - alpha) * temp * ((s.detach() / temp).softmax(1) - (t / temp).softmax(1))) / 5
    torch.testing.assert_close(s.grad, expected)


def test_logit_matching_gradient_matches_autograd():
    torch.manual_seed(1)
    s = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (3,))
    assert torch.autograd.gradcheck(lambda z: logit_matching_loss(z, t, y, 0.4), (s,))


def test_alpha_one_is_cross_entropy_and_teacher_is_ignored():
    s, y = torch.tensor(S), torch.tensor(Y)
    ce = F.cross_entropy(s, y)
    assert kd_loss(s, None, y, 7.0, 1.0).item() == pytest.approx(ce.item())
    assert kd_loss(s, torch.tensor(T), y, 1.0, 1.0).item() == pytest.approx(ce.item())


def test_temperature_one_with_teacher_equal_to_onehot_limit_is_cross_entropy():
    # at T=1, KL(onehot-like teacher || student) = CE(student, labels) - H(teacher) -> CE as the teacher sharpens
    s, y = torch.tensor(S), torch.tensor(Y)
    sharp = F.one_hot(y, 3).float() * 60.0
    assert kd_loss(s, sharp, y, 1.0, 0.0).item() == pytest.approx(F.cross_entropy(s, y).item(), abs=1e-6)
    # and at T=1 the soft term is exactly CE(student, p_teacher) - H(p_teacher)
    t = torch.tensor(T)
    pt = t.softmax(1)
    ce_soft = -(pt * s.log_softmax(1)).sum(1).mean()
    entropy = -(pt * pt.log()).sum(1).mean()
    assert kd_loss(s, t, y, 1.0, 0.0).item() == pytest.approx((ce_soft - entropy).item(), rel=1e-6)


def test_teacher_equal_to_student_gives_zero_soft_term():
    s = torch.tensor(S)
    assert kd_loss(s, s.clone(), torch.tensor(Y), 4.0, 0.0).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("kwargs", [dict(temperature=0.0), dict(temperature=-1.0), dict(alpha=-0.1),
                                    dict(alpha=1.5), dict(mode="hint"), dict(cache="sometimes")])
def test_bad_hparams_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        DistillHparams(**kwargs)


class _Counting(torch.nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.lin = torch.nn.Linear(2, 3)
        with torch.no_grad():
            self.lin.weight.copy_(weight)
            self.lin.bias.zero_()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


def _data():
    g = torch.Generator().manual_seed(0)
    return TensorData(torch.randn(10, 2, generator=g), torch.randint(0, 3, (10,), generator=g))


@pytest.mark.parametrize("policy,cached", [("auto", True), ("always", True), ("never", False)])
def test_cached_and_on_the_fly_teacher_give_the_same_loss(policy, cached):
    data = _data()
    teacher = _Counting(torch.randn(3, 2, generator=torch.Generator().manual_seed(3)))
    loss = DistillationLoss(teacher, DistillHparams(temperature=2.0, alpha=0.3, cache=policy), data, device="cpu")
    assert loss.teacher.cached is cached
    calls_before = teacher.calls
    idx = torch.tensor([7, 2, 5])
    batch = Batch(data.x[idx], data.y[idx], idx)
    student_out = torch.randn(3, 3)
    got = loss(student_out, batch)
    with torch.no_grad():
        expected = kd_loss(student_out, teacher.lin(data.x[idx]), data.y[idx], 2.0, 0.3)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert (teacher.calls == calls_before) is cached  # the cache never runs the teacher again


def test_shape_mismatch_at_call_is_config_error():
    data = _data()
    loss = DistillationLoss(_Counting(torch.zeros(3, 2)), DistillHparams(), data, device="cpu")
    idx = torch.tensor([0, 1])
    with pytest.raises(ConfigError, match="teacher outputs"):
        loss(torch.randn(2, 4), Batch(data.x[idx], data.y[idx], idx))


def test_always_cache_without_data_is_config_error():
    with pytest.raises(ConfigError):
        DistillationLoss(_Counting(torch.zeros(3, 2)), DistillHparams(cache="always"))
