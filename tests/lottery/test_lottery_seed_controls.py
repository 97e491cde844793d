"""The rethinking controls (scratch, finetuned) and the Early-Bird search inside a lottery experiment."""
import pytest
import torch

from netpress.errors import ConfigError
from netpress.lottery import LotteryHparams, load_stage, level_masks, run_lottery
from netpress.lottery.early_bird import EarlyBird
from netpress.lottery.experiment import branch_hparams, derived_seed
from netpress.models import build_model
from netpress.prune import plain_state_dict
from netpress.train import TrainingHparams, train

from lottery_helpers import DATA, MODEL, TRAIN, tiny
from test_lottery_experiment import Recorder, _survivors_equal


def test_branch_hparams_scratch_is_the_whole_schedule_finetuned_the_final_lr():
    hp, t = LotteryHparams(rewind="100it"), TrainingHparams(steps="1000it", lr=0.1, lr_schedule="cosine")
    assert branch_hparams(hp, t, 50, "scratch") == (t, 0)
    ticket, start = branch_hparams(hp, t, 50, "ticket")
    assert (ticket.steps, start) == ("900it", 100)
    ft, start = branch_hparams(hp, t, 50, "finetuned")
    assert start == 0 and ft.steps == "1000it" and ft.lr_schedule == "constant" and ft.lr < 1e-3


def test_scratch_and_finetuned_controls_start_where_liu_et_al_say(tmp_path, data, monkeypatch):
    rec = Recorder(monkeypatch)
    res = run_lottery(MODEL, DATA, TRAIN, tiny(levels=2, rewind="7it", controls="scratch,finetuned"),
                      root=tmp_path, data=data, device="cpu")
    rows = {(r["level"], r["branch"]): r for r in res.rows}
    assert rows[(2, "scratch")]["start_iteration"] == 0 and rows[(2, "scratch")]["iterations"] == 40
    assert rows[(2, "ticket")]["iterations"] == 33
    assert rows[(2, "scratch")]["remaining"] == rows[(2, "ticket")]["remaining"]
    state, masks = rec.starts["replicate_0/level_02/scratch"]
    fresh = plain_state_dict(build_model(MODEL, data.input_shape, data.num_classes,
                                         seed=derived_seed(TRAIN.seed, 2, "scratch")))
    _survivors_equal(state, masks, fresh)  # same mask, fresh init
    parent = load_stage(res.path / "replicate_0" / "level_01" / "ticket")
    state, masks = rec.starts["replicate_0/level_02/finetuned"]
    _survivors_equal(state, masks, parent["state"])  # the previous level's trained weights, pruned
    _, ticket_masks = rec.starts["replicate_0/level_02/ticket"]
    assert all(torch.equal(masks[n], ticket_masks[n]) for n in masks)


def test_early_bird_stop_ends_training_at_detection(data):
    """lr 0: the mask never moves, so with window w the ticket is detected at observation w (0-based) and the
    trainer stops right after iteration every * (w + 1)."""
    net = build_model(MODEL, data.input_shape, data.num_classes, seed=0)
    eb = EarlyBird(0.5, window=2, eps=0.01, every=3, stop=True)
    hp = TRAIN.replace(optimizer="sgd", lr=1e-30, steps="2ep", eval_every="1ep")
    result = train(net, data, hp, device="cpu", callbacks=[eb])
    assert eb.detected_iteration == 9 and result.iterations == 9
    assert result.metrics[-1]["iteration"] == 9  # evaluated at the stop
    eb_no_stop = EarlyBird(0.5, window=2, eps=0.01, every=3)
    assert train(build_model(MODEL, data.input_shape, data.num_classes, seed=0), data, hp, device="cpu",
                 callbacks=[eb_no_stop]).iterations == 40


def test_early_bird_search_ticket_and_cost_accounting(tmp_path, data):
    hp = tiny(levels=2, controls="", early_bird=True, early_bird_every="5it", early_bird_window=2,
              early_bird_eps=0.2)
    res = run_lottery(MODEL, DATA, TRAIN, hp, root=tmp_path, data=data, device="cpu")
    eb = res.early_bird[0]
    assert eb["detected"] and eb["search_iterations"] == eb["detected_iteration"] < 40
    assert eb["detected_iteration"] == 5 * (len(eb["distances"]) + 1)  # observations at 5, 10, ..., detection
    assert all(d < 0.2 for d in eb["distances"][-2:])
    folder = next((res.path / "replicate_0" / "early_bird").iterdir())
    search = load_stage(folder / "search")
    net = build_model(MODEL, data.input_shape, data.num_classes, seed=0)
    net.load_state_dict({k: v for k, v in search["state"].items()}, strict=False)
    want = level_masks(net, hp, hp.levels)  # the final level's masks drawn from the weights at detection
    got = torch.load(folder / "search" / "mask.pt", weights_only=True)
    assert all(torch.equal(got[n], want[n]) for n in want)
    assert eb["remaining"] == pytest.approx(eb["imp_remaining"], abs=2e-3)
    imp = [r for r in res.rows if r["branch"] == "ticket"]
    assert eb["imp_iterations"] == sum(r["iterations"] for r in imp) == 120
    assert eb["iterations"] == eb["search_iterations"] + 40
    assert res.summary["early_bird"]["detected"] == 1
    again = run_lottery(MODEL, DATA, TRAIN, hp, root=tmp_path, data=data, device="cpu")  # finished: reused
    assert {k: v for k, v in again.early_bird[0].items() if "seconds" not in k} == \
        {k: v for k, v in eb.items() if "seconds" not in k}


@pytest.mark.parametrize("changes,message", [
    (dict(early_bird_eps=0.0), "early_bird_eps"),
    (dict(early_bird_every="0it"), "early_bird_every"),
    (dict(early_bird_every="often"), "early_bird_every"),
    (dict(early_bird_window=0), "early_bird_window"),
    (dict(controls="scratch,rescratch"), "unknown control"),
])
def test_bad_early_bird_and_control_settings(changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**changes)


def test_report_has_an_early_bird_section(tmp_path, data):
    from netpress.report.lottery import write_report

    hp = tiny(levels=1, controls="", early_bird=True, early_bird_every="5it", early_bird_window=2, early_bird_eps=0.2)
    res = run_lottery(MODEL, DATA, TRAIN, hp, root=tmp_path, data=data, device="cpu")
    md = write_report(res.summary, tmp_path / "report")["markdown"]
    eb = res.early_bird[0]
    assert "## Early-Bird ticket vs the last IMP level" in md
    assert f"| 1/1 | {eb['detected_iteration']} |" in md and f"| {eb['imp_iterations']} |" in md
    plain = write_report(run_lottery(MODEL, DATA, TRAIN, tiny(levels=1, controls=""), root=tmp_path, data=data,
                                     device="cpu").summary, tmp_path / "plain")["markdown"]
    assert "Early-Bird" not in plain
