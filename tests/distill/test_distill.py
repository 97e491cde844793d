"""End-to-end distillation on tiny data: it trains, composes with pruning masks, and rejects mismatches early."""
import copy

import pytest
import torch
from torch import nn

from netpress.data import load_data
from netpress.distill import DistillHparams, DistillationLoss, distill
from netpress.errors import ConfigError
from netpress.prune.masks import apply_masks, get_masks
from netpress.train import TrainingHparams, evaluate, train


def _mlp(hidden, classes=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, classes))


@pytest.fixture(scope="module")
def setup():
    data = load_data("synthetic")
    teacher = _mlp(64, seed=1)
    train(teacher, data, TrainingHparams(steps="3ep", lr=0.05), device="cpu", progress=False)
    return data, teacher


def test_distilled_student_learns_from_teacher(setup):
    data, teacher = setup
    student = _mlp(8)
    result = distill(student, teacher, data, TrainingHparams(steps="3ep", lr=0.05), temperature=4.0, alpha=0.1,
                     device="cpu", progress=False)
    teacher_acc = evaluate(teacher, data.test).accuracy
    assert result.final_test_accuracy > 0.9 and teacher_acc > 0.9
    # student and teacher agree on most test predictions
    with torch.no_grad():
        agree = (student(data.test.x).argmax(1) == teacher(data.test.x).argmax(1)).float().mean().item()
    assert agree > 0.9


def test_logit_matching_pulls_student_logits_to_teacher(setup):
    data, teacher = setup
    student = _mlp(8, seed=2)
    with torch.no_grad():
        target = teacher(data.test.x)
        mse_before = (student(data.test.x) - target).pow(2).mean().item()
    before = evaluate(student, data.test).accuracy
    result = distill(student, teacher, data, TrainingHparams(steps="2ep", lr=0.01),
                     hparams=DistillHparams(mode="logits", alpha=0.0), device="cpu", progress=False)
    with torch.no_grad():
        mse_after = (student(data.test.x) - target).pow(2).mean().item()
    assert mse_after < 0.5 * mse_before
    assert result.final_test_accuracy > before + 0.3


def test_teacher_is_not_modified(setup):
    data, teacher = setup
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    distill(_mlp(8), teacher, data, TrainingHparams(steps="10it"), device="cpu", progress=False)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k])


def test_composes_with_pruning_masks(setup):
    """Distillation as the loss of pruning retraining: masked weights stay zero, accuracy is kept."""
    data, teacher = setup
    student = _mlp(16, seed=3)
    w = student[1].weight
    mask = (w.abs() >= w.abs().flatten().kthvalue(w.numel() // 2).values).float()
    apply_masks(student, {"1.weight": mask})
    loss = DistillationLoss(teacher, DistillHparams(temperature=2.0, alpha=0.5), data.train, device="cpu")
    result = train(student, data, TrainingHparams(steps="2ep"), loss_fn=loss, device="cpu", progress=False)
    assert torch.equal(get_masks(student)["1.weight"], mask)
    assert torch.all(student[1].weight[mask == 0] == 0)
    assert result.final_test_accuracy > 0.85


def test_class_count_mismatch_fails_before_training(setup):
    data, teacher = setup
    student = _mlp(8, classes=5)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    with pytest.raises(ConfigError, match="teacher has 4 outputs but student has 5"):
        distill(student, teacher, data, TrainingHparams(steps="1ep"), device="cpu", progress=False)
    assert all(torch.equal(v, before[k]) for k, v in student.state_dict().items())


@pytest.mark.parametrize("kwargs", [dict(temperature=0), dict(alpha=2.0)])
def test_bad_values_fail_before_training(setup, kwargs):
    data, teacher = setup
    with pytest.raises(ConfigError):
        distill(_mlp(8), teacher, data, TrainingHparams(steps="1ep"), device="cpu", progress=False, **kwargs)


def test_teacher_term_decides_what_is_learned_and_alpha_one_is_the_control(setup):
    """A 'liar' teacher (the trained teacher with its outputs rotated) disagrees with every label. With the
    teacher term (alpha=0.1) the student follows the liar; with alpha=1 (labels only) it follows the labels."""
    data, teacher = setup
    liar = copy.deepcopy(teacher)
    with torch.no_grad():
        liar[3].weight.copy_(teacher[3].weight.roll(1, 0))
        liar[3].bias.copy_(teacher[3].bias.roll(1, 0))
    x, y = data.test.x, data.test.y
    with torch.no_grad():
        lies = liar(x).argmax(1)
    assert (lies == y).float().mean() < 0.1
    follows = {}
    for alpha in (0.1, 1.0):
        student = _mlp(8, seed=4)
        distill(student, liar, data, TrainingHparams(steps="3ep", lr=0.05), temperature=4.0, alpha=alpha,
                device="cpu", progress=False)
        with torch.no_grad():
            pred = student(x).argmax(1)
        follows[alpha] = ((pred == lies).float().mean().item(), (pred == y).float().mean().item())
    assert follows[0.1][0] > 0.8 and follows[0.1][1] < 0.2
    assert follows[1.0][0] < 0.1 and follows[1.0][1] > 0.9
