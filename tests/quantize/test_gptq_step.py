"""GPTQ on an entropy-coded grid (``step``): one step per tensor, no clipping, fewer bits than a fixed-rate grid."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from netpress.errors import ConfigError
from netpress.pipeline.oneshot import OneshotQuantize
from netpress.quantize.gptq import GPTQHparams, gptq_codes, output_error, step_range
from netpress.quantize.uniform import UniformSpec


def laplace(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(rows, cols, generator=g, dtype=torch.float64) - 0.5
    return (-torch.sign(u) * torch.log1p(-2 * u.abs())).float() * 0.05


def entropy_bits(codes: torch.Tensor) -> float:
    counts = np.bincount(codes.reshape(-1).numpy().astype(np.int64) + 1)  # -1 (a zero) is a symbol too
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def test_step_range_shares_one_float16_step_and_widens_only_rows_that_need_it():
    w = laplace(32, 256)
    w[2, 5] = 200 * float(w.std())  # an outlier row: 255 steps of 0.3 std cannot cover it
    scale, zp = step_range(w, UniformSpec(bits=8, granularity="channel"), step=0.3)
    base = torch.tensor(0.3 * float(w.std())).half().float()
    normal = torch.arange(32) != 2
    assert torch.equal(scale[normal], base.expand(31))
    assert torch.equal(zp[normal], torch.zeros(31, dtype=torch.int64))  # 0 is the middle code (signed): one
    # distribution of codes for all rows
    assert scale[2] > base and scale[2] * 255 >= w[2].max() - w[2].min().clamp(max=0)
    assert torch.equal(scale.half().float(), scale)  # float16-exact: stored in 2 bytes, losslessly


def test_step_grid_never_clips_and_rtn_error_is_half_a_step():
    w = laplace(6, 64)
    w[1, 0] = 60 * float(w.std())
    codes = gptq_codes(w, None, GPTQHparams(bits=8, step=0.5))
    scale = codes.scale.reshape(-1, 1)
    assert int(codes.indices.max()) <= 255  # offsets from qmin (-1 marks zeros)
    assert bool(((codes.decode() - w).abs() <= scale / 2 + 1e-7).all())  # rounding only, no clipped value


def test_step_gptq_output_error_below_round_to_nearest_on_the_same_grid():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(512, 4, generator=g, dtype=torch.float64) @ torch.randn(4, 32, generator=g, dtype=torch.float64)
    x = x + 0.1 * torch.randn(512, 32, generator=g, dtype=torch.float64)
    h = 2 * x.T @ x / x.shape[0]
    w = laplace(8, 32, seed=4)
    hp = GPTQHparams(bits=8, step=0.6)
    gptq, rtn = gptq_codes(w, h, hp), gptq_codes(w, None, hp)
    assert torch.equal(gptq.scale, rtn.scale)  # the grid does not depend on the data
    assert output_error(w, gptq.decode(), h) < 0.8 * output_error(w, rtn.decode(), h)


def test_step_grid_beats_a_fixed_rate_grid_at_no_more_bits_on_heavy_tailed_weights():
    w = laplace(64, 256, seed=5)
    fixed = gptq_codes(w, None, GPTQHparams(bits=4))  # 16 levels, per-row clip search
    fixed_mse, fixed_bits = float(((fixed.decode() - w) ** 2).mean()), entropy_bits(fixed.indices)
    for step in np.arange(0.20, 1.01, 0.02):  # the finest step whose codes cost no more bits
        coded = gptq_codes(w, None, GPTQHparams(bits=8, step=float(step)))
        if entropy_bits(coded.indices) <= fixed_bits:
            break
    else:
        pytest.fail("no step reached the fixed-rate grid's entropy")
    step_mse = float(((coded.decode() - w) ** 2).mean())
    assert step_mse < 0.85 * fixed_mse


def test_step_needs_uniform_per_channel_codes():
    with pytest.raises(ConfigError, match="step"):
        GPTQHparams(bits=8, step=0.5, granularity="group")
    with pytest.raises(ConfigError, match="step"):
        GPTQHparams(bits=4, step=0.5, method="kmeans")
    with pytest.raises(ConfigError, match="step"):
        GPTQHparams(bits=8, step=-1.0)
    with pytest.raises(ConfigError, match="step"):
        OneshotQuantize(method="kmeans", bits=4, step=0.5)
    assert OneshotQuantize(method="gptq", bits=8, step=0.5).step == 0.5


@pytest.mark.parametrize("hp", [GPTQHparams(bits=3), GPTQHparams(bits=8, step=0.4),
                                GPTQHparams(bits=4, granularity="group", group_size=8),
                                GPTQHparams(bits=4, granularity="group", group_size=8, act_order=True)])
def test_round_to_nearest_in_row_blocks_equals_column_by_column(hp):
    from netpress.quantize.gptq import UniformRounder

    w = laplace(37, 32, seed=9)
    w[3, :5] = 0  # pruned weights stay zero
    keep = w != 0
    by_column = UniformRounder(w, None, hp, keep)
    reference = torch.stack([by_column.column(j, w) for j in range(w.shape[1])], 1)
    blocked = UniformRounder(w, None, hp, keep).nearest(w, block_rows=5)
    assert torch.equal(blocked, reference)
    assert torch.equal(gptq_codes(w, None, hp).decode(), reference)
