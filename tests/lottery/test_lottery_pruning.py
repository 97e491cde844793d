import pytest
import torch

from netpress.lottery import LotteryHparams, level_masks, mask_sparsity, output_layer, random_masks
from netpress.models import build_model
from netpress.prune import apply_masks


def _trained_like(seed=0):
    return build_model("lenet300", (1, 8, 8), 4, seed=seed)


@pytest.mark.parametrize("scope", ["local", "global"])
def test_sparsity_after_level_l_follows_the_imp_formula(scope):
    hp = LotteryHparams(prune_fraction=0.2, output_fraction=0.1, scope=scope)
    model = _trained_like()
    out = output_layer(model)
    for level in range(1, 6):
        masks = level_masks(model, hp, level)
        apply_masks(model, masks)
        with torch.no_grad():  # perturb survivors, as training would, so the ranking changes between levels
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        s = mask_sparsity(masks)["layers"]
        assert s[out] == pytest.approx(1 - 0.9 ** level, abs=1 / masks[out].numel())
        hidden = [n for n in masks if n != out]
        if scope == "local":
            for n in hidden:
                assert s[n] == pytest.approx(1 - 0.8 ** level, abs=1 / masks[n].numel())
        total = sum(masks[n].numel() for n in hidden)
        zeros = sum(int((masks[n] == 0).sum()) for n in hidden)
        assert zeros / total == pytest.approx(1 - 0.8 ** level, abs=1 / total)


def test_pruned_weights_stay_pruned_across_levels():
    hp = LotteryHparams(prune_fraction=0.5)
    model = _trained_like()
    first = level_masks(model, hp, 1)
    apply_masks(model, first)
    second = level_masks(model, hp, 2)
    for n in first:
        assert torch.all(second[n] <= first[n])


def test_random_masks_keep_per_layer_counts_and_move_positions():
    masks = level_masks(_trained_like(), LotteryHparams(prune_fraction=0.6), 2)
    rnd = random_masks(masks, seed=3)
    for n in masks:
        assert rnd[n].shape == masks[n].shape
        assert int(rnd[n].sum()) == int(masks[n].sum())
        assert not torch.equal(rnd[n], masks[n])
    assert all(torch.equal(random_masks(masks, 3)[n], rnd[n]) for n in masks)
