import pytest
import torch

from netpress.errors import ConfigError
from netpress.models import build_model
from netpress.train import TrainingHparams, evaluate, lr_multiplier, resolve_device, train

HP = TrainingHparams(steps="3ep", batch_size=100, lr=0.05, eval_every="5it")


def _net(data, seed=0):
    return build_model("lenet300", data.input_shape, data.num_classes, seed=seed)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_bit_identical(synthetic):
    a, b = _net(synthetic), _net(synthetic)
    train(a, synthetic, HP, device="cpu")
    train(b, synthetic, HP, device="cpu")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_training_learns_and_records_early_stopping(synthetic):
    net = _net(synthetic)
    before = evaluate(net, synthetic.test).accuracy
    res = train(net, synthetic, HP, device="cpu")
    assert res.final_test_accuracy > 0.9 > before
    assert res.iterations == 30 and [m["iteration"] for m in res.metrics] == [5, 10, 15, 20, 25, 30]
    best = min(res.metrics, key=lambda m: m["val_loss"])
    assert res.best_iteration == best["iteration"] and res.best_test_accuracy == best["test_accuracy"]


class Killed(Exception):
    pass


class KillAt:
    def __init__(self, iteration):
        self.iteration = iteration

    def on_step_end(self, iteration, model, optimizer):
        if iteration == self.iteration:
            raise Killed


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_killed_run_resumes_to_identical_weights(synthetic, tmp_path, optimizer):
    hp = HP.replace(optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.05, lr_schedule="cosine")
    reference = _net(synthetic)
    train(reference, synthetic, hp, device="cpu")

    victim = _net(synthetic)
    with pytest.raises(Killed):
        train(victim, synthetic, hp, checkpoint_dir=tmp_path, callbacks=[KillAt(13)], device="cpu")
    fresh = _net(synthetic)  # a new process would rebuild the model from scratch
    res = train(fresh, synthetic, hp, checkpoint_dir=tmp_path, device="cpu")
    assert res.resumed_from == 10
    for k, v in reference.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k
    assert [m["iteration"] for m in res.metrics] == [5, 10, 15, 20, 25, 30]


def test_finished_checkpoint_does_no_more_work(synthetic, tmp_path):
    net = _net(synthetic)
    train(net, synthetic, HP, checkpoint_dir=tmp_path, device="cpu")
    w = _weights(net)
    again = _net(synthetic)
    res = train(again, synthetic, HP, checkpoint_dir=tmp_path, device="cpu", callbacks=[KillAt(1)])
    assert res.resumed_from == 30
    for k, v in w.items():
        assert torch.equal(v, again.state_dict()[k])


def test_snapshots_for_rewinding(synthetic):
    net = _net(synthetic)
    init = _weights(net)
    res = train(net, synthetic, HP, snapshot_at=["0it", "7it"], device="cpu")
    assert set(res.snapshots) == {0, 7}
    for k, v in init.items():
        assert torch.equal(res.snapshots[0][k], v)
    assert not torch.equal(res.snapshots[7]["fc_out.weight"], init["fc_out.weight"])


@pytest.mark.parametrize("changes,match", [
    ({"steps": "0ep"}, "longer than zero"),
    ({"lr": -0.1}, "lr must be > 0"),
    ({"batch_size": 0}, "batch_size must be > 0"),
    ({"optimizer": "lion"}, "unknown optimizer"),
    ({"steps": "20"}, "cannot parse steps"),
    ({"momentum": 1.0}, "momentum"),
])
def test_nonsense_hparams_rejected(changes, match):
    with pytest.raises(ConfigError, match=match):
        TrainingHparams(**changes)


def test_lr_schedules():
    hp = TrainingHparams(steps="10it", lr_schedule="step", milestones="4it,8it", gamma=0.5)
    f = lr_multiplier(hp, iterations_per_epoch=5)
    assert [f(i) for i in (0, 3, 4, 8, 9)] == [1, 1, 0.5, 0.25, 0.25]
    cos = lr_multiplier(TrainingHparams(steps="10it", lr_schedule="cosine"), 5)
    assert cos(0) == 1 and abs(cos(5) - 0.5) < 1e-9 and cos(10) < 1e-9
    warm = lr_multiplier(TrainingHparams(steps="10it", warmup="4it"), 5)
    assert [warm(i) for i in range(5)] == [0.25, 0.5, 0.75, 1, 1]


def test_device_selection():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_custom_loss_and_user_dataset(synthetic):
    """Any Dataset and any loss: a plain TensorDataset wrapper with a label-smoothing loss."""
    class Wrapped(torch.utils.data.Dataset):
        def __init__(self, d):
            self.d = d

        def __len__(self):
            return len(self.d)

        def __getitem__(self, i):
            return self.d.x[i], int(self.d.y[i])

    from netpress.data import DataSplits

    data = DataSplits(Wrapped(synthetic.train), None, Wrapped(synthetic.test), 4, synthetic.input_shape)
    calls = []

    def loss(out, batch):
        calls.append(len(batch.index))
        return torch.nn.functional.cross_entropy(out, batch.y, label_smoothing=0.1)

    res = train(_net(synthetic), data, HP.replace(steps="1ep"), loss_fn=loss, device="cpu")
    assert sum(calls) == len(synthetic.train) and res.final_test_accuracy > 0.8


def test_divergence_stops_with_a_clear_error(synthetic):
    from netpress.train import TrainingDiverged

    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) at iteration \d+ \(lr 1e\+06\); lower the lr"):
        train(_net(synthetic), synthetic, HP.replace(lr=1e6), device="cpu")


class RecordLr:
    def __init__(self):
        self.lrs = []

    def on_step_end(self, iteration, model, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize("schedule", ["cosine", "linear", "step"])
def test_rewound_run_replays_the_tail_of_the_lr_schedule(synthetic, schedule):
    hp = HP.replace(lr_schedule=schedule, milestones="1ep,2ep", warmup="3it")  # 30 iterations
    full, tail = RecordLr(), RecordLr()
    train(_net(synthetic), synthetic, hp, callbacks=[full], device="cpu")
    train(_net(synthetic), synthetic, hp.replace(steps="18it"), start_iteration=12, callbacks=[tail], device="cpu")
    assert len(full.lrs) == 30 and tail.lrs == full.lrs[12:]
