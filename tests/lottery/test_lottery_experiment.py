"""IMP levels, rewinding, controls and resumability of a tiny experiment (lenet300 on synthetic data)."""
import json

import pytest
import torch

import netpress.lottery.experiment as experiment
from netpress.lottery import load_stage, run_lottery
from netpress.prune import get_masks, plain_state_dict

from lottery_helpers import DATA, MODEL, TRAIN, tiny


class Recorder:
    """Wraps ``train_stage`` to keep each stage's starting weights and masks (before any training)."""

    def __init__(self, monkeypatch):
        self.starts = {}
        real = experiment.train_stage

        def wrapped(folder, model, *args, **kwargs):
            key = "/".join(folder.parts[-3:])
            self.starts[key] = (plain_state_dict(model), get_masks(model))
            return real(folder, model, *args, **kwargs)

        monkeypatch.setattr(experiment, "train_stage", wrapped)


def _run(tmp_path, data, name="runs", **changes):
    return run_lottery(MODEL, DATA, TRAIN, tiny(**changes), root=tmp_path / name, data=data, device="cpu")


def _survivors_equal(state, masks, reference):
    for name, mask in masks.items():
        keep = mask > 0
        assert torch.equal(state[name][keep], reference[name][keep]), name
        assert torch.all(state[name][~keep] == 0), name


def test_rows_cover_every_level_and_branch_with_imp_sparsity(tmp_path, data):
    res = _run(tmp_path, data)
    assert [(r["level"], r["branch"]) for r in res.rows] == [(0, "ticket")] + [
        (lv, b) for lv in (1, 2) for b in ("ticket", "reinit", "random-mask", "oneshot")]
    for r in res.rows:
        layers = r["layer_sparsity"]
        assert layers["fc_out.weight"] == pytest.approx(1 - 0.8 ** r["level"], abs=0.01)
        assert r["sparsity"] == pytest.approx(1 - 0.5 ** r["level"], abs=0.01)
        assert 0 <= r["early_stop_iteration"] <= r["iterations"]
        assert r["metrics"] and 0 <= r["test_accuracy"] <= 1
    lv2 = res.summary["levels"][2]["branches"]
    assert set(lv2) == {"ticket", "reinit", "random-mask", "oneshot"}
    assert lv2["ticket"]["test_accuracy"]["n"] == 1
    assert (res.path / "hparams.json").exists() and (res.path / "results.json").exists()


def test_rewinding_to_init_restores_survivors_exactly(tmp_path, data, monkeypatch):
    rec = Recorder(monkeypatch)
    res = _run(tmp_path, data, controls="reinit,random-mask")
    init = torch.load(res.path / "replicate_0" / "init.pt", weights_only=True)
    for level in (1, 2):
        state, masks = rec.starts[f"replicate_0/level_{level:02d}/ticket"]
        level_mask = torch.load(res.path / "replicate_0" / f"level_{level:02d}" / "mask.pt", weights_only=True)
        assert all(torch.equal(masks[n], level_mask[n]) for n in level_mask)
        _survivors_equal(state, masks, init)
        # the mask came from the previous level's trained weights: every survivor survived there too
        prev = load_stage(res.path / "replicate_0" / f"level_{level - 1:02d}" / "ticket")["masks"]
        assert all(torch.all(masks[n] <= prev[n]) for n in prev)

    # reinit: same mask, different weights; random mask: same per-layer counts, other positions, init weights
    t_state, t_masks = rec.starts["replicate_0/level_02/ticket"]
    r_state, r_masks = rec.starts["replicate_0/level_02/reinit"]
    assert all(torch.equal(r_masks[n], t_masks[n]) for n in t_masks)
    assert not torch.equal(r_state["features.0.weight"], t_state["features.0.weight"])
    m_state, m_masks = rec.starts["replicate_0/level_02/random-mask"]
    for n in t_masks:
        assert int(m_masks[n].sum()) == int(t_masks[n].sum())
    assert not torch.equal(m_masks["features.0.weight"], t_masks["features.0.weight"])
    _survivors_equal(m_state, m_masks, init)


def test_late_rewinding_restores_iteration_k_and_oneshot_prunes_the_dense_net(tmp_path, data, monkeypatch):
    rec = Recorder(monkeypatch)
    res = _run(tmp_path, data, rewind="7it", controls="oneshot", levels=1)
    dense = load_stage(res.path / "replicate_0" / "level_00" / "ticket")
    assert set(dense["snapshots"]) == {7}
    state, masks = rec.starts["replicate_0/level_01/ticket"]
    _survivors_equal(state, masks, dense["snapshots"][7])
    row = next(r for r in res.rows if r["level"] == 1 and r["branch"] == "ticket")
    assert row["start_iteration"] == 7 and row["iterations"] == 40 - 7
    o_state, o_masks = rec.starts["replicate_0/level_01/oneshot"]
    kept = {n: (dense["state"][n].abs() > 0) for n in o_masks}
    assert all(torch.all(o_masks[n].bool() <= kept[n]) for n in o_masks)
    _survivors_equal(o_state, o_masks, dense["snapshots"][7])


def test_lr_rewinding_keeps_the_trained_weights(tmp_path, data, monkeypatch):
    rec = Recorder(monkeypatch)
    res = _run(tmp_path, data, rewind="lr", controls="random-mask", levels=2)
    dense = load_stage(res.path / "replicate_0" / "level_00" / "ticket")
    state, masks = rec.starts["replicate_0/level_01/ticket"]
    _survivors_equal(state, masks, dense["state"])
    level1 = load_stage(res.path / "replicate_0" / "level_01" / "ticket")
    state, masks = rec.starts["replicate_0/level_02/ticket"]
    _survivors_equal(state, masks, level1["state"])  # the parent's trained weights, not the init
    state, masks = rec.starts["replicate_0/level_02/random-mask"]
    _survivors_equal(state, masks, dense["state"])  # a new mask starts from the dense trained weights


class Kill(Exception):
    pass


class KillAt:
    """Raises once, after ``at`` optimizer steps counted over the whole experiment."""

    def __init__(self, at):
        self.at, self.steps = at, 0

    def on_step_end(self, iteration, model, optimizer):
        self.steps += 1
        if self.steps == self.at:
            raise Kill()


def test_killed_run_resumes_to_identical_numbers(tmp_path, data):
    hp = tiny(levels=2, controls="reinit", lmc_levels="1")
    full = run_lottery(MODEL, DATA, TRAIN, hp, root=tmp_path / "a", data=data, device="cpu")
    root = tmp_path / "b"
    # killed inside level 1's reinit (checkpoint at its it 20), then, resumed, inside the first LMC copy of level 1
    for at, stage in ((40 + 40 + 23, "level_01/reinit"), (20 + 13, "lmc/level_01_0it/copy_a")):
        with pytest.raises(Kill):
            run_lottery(MODEL, DATA, TRAIN, hp, root=root, data=data, device="cpu", callbacks=[KillAt(at)])
        folder = root / full.id / "replicate_0" / stage
        assert (folder / "checkpoint.pt").exists() and not (folder / "result.json").exists()
    resumed = run_lottery(MODEL, DATA, TRAIN, hp, root=root, data=data, device="cpu")
    assert resumed.id == full.id
    assert resumed.rows == full.rows
    assert resumed.summary["lmc"] == full.summary["lmc"]
    for stage in ("level_01/reinit", "level_02/ticket", "level_02/reinit"):
        a = load_stage(full.path / "replicate_0" / stage)["state"]
        b = load_stage(resumed.path / "replicate_0" / stage)["state"]
        assert all(torch.equal(a[n], b[n]) for n in a)
    again = run_lottery(MODEL, DATA, TRAIN, hp, root=root, data=data, device="cpu", callbacks=[KillAt(1)])
    assert again.rows == full.rows  # everything done: nothing trains, so the callback never fires


class Threads:
    """Records the torch thread count at every optimizer step."""

    def __init__(self):
        self.seen = set()

    def on_step_end(self, iteration, model, optimizer):
        self.seen.add(torch.get_num_threads())


@pytest.fixture
def caller_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_resume_trains_with_the_recorded_thread_count_and_restores_the_callers(tmp_path, data, caller_threads):
    hp = tiny(levels=1, controls="reinit")
    torch.set_num_threads(1)
    with pytest.raises(Kill):  # killed inside level 1, after the folder recorded 1 thread
        run_lottery(MODEL, DATA, TRAIN, hp, root=tmp_path, data=data, device="cpu", callbacks=[KillAt(40 + 5)])
    torch.set_num_threads(2)
    spy = Threads()
    resumed = run_lottery(MODEL, DATA, TRAIN, hp, root=tmp_path, data=data, device="cpu", callbacks=[spy])
    assert spy.seen == {1} and torch.get_num_threads() == 2  # trained with the recorded count, restored after
    assert json.loads((resumed.path / "hparams.json").read_text())["torch_threads"] == 1
    assert resumed.summary["torch_threads"] == 1
    fresh = run_lottery(MODEL, DATA, TRAIN, hp, root=tmp_path / "fresh", data=data, device="cpu")
    assert fresh.summary["torch_threads"] == 2  # a new experiment records the caller's count


def test_replicates_and_lmc_are_recorded(tmp_path, data):
    res = _run(tmp_path, data, levels=1, controls="reinit", replicates=2, lmc_levels="0,1")
    assert {r["replicate"] for r in res.rows} == {0, 1}
    stats = res.summary["levels"][1]["branches"]["ticket"]["test_accuracy"]
    assert stats["n"] == 2 and stats["min"] <= stats["mean"] <= stats["max"]
    assert [(e["level"], e["rewind"]) for e in res.summary["lmc"]] == [(0, "0it"), (1, "0it")]
    for e in res.summary["lmc"]:
        assert len(e["curves"]) == 2 and len(e["curves"][0]["errors"]) == 30
        assert e["barrier"]["min"] >= 0
    from netpress.runs import Store

    run = Store(tmp_path / "runs").list_runs("lottery")[0]
    assert run["id"] == res.id and run["status"] == "done"
    assert Store(tmp_path / "runs").metrics(res.id, "ticket.r1.test_accuracy")[-1][0] == 1
