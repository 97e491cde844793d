"""Integer-only inference: bit-exact vs the plain numpy int64 reference, close to the float model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from netpress.errors import ConfigError
from netpress.models import build_model
from netpress.runtime.integer import dyadic, integer_forward, integerize, numpy_forward


@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
def test_integer_path_bit_exact_vs_numpy(name):
    model = build_model(name, (1, 28, 28), 10, seed=0).eval()
    gen = torch.Generator().manual_seed(1)
    calib, x = torch.randn(64, 1, 28, 28, generator=gen), torch.randn(16, 1, 28, 28, generator=gen)
    prog = integerize(model, calib)
    got = integer_forward(prog, x, dequantize=False)
    ref = numpy_forward(prog, x.numpy())
    assert got.dtype == torch.int8
    assert np.array_equal(got.numpy().astype(np.int64), ref)
    assert len(np.unique(ref)) > 10  # a non-degenerate output, not all clamped


def test_integer_path_close_to_float_and_keeps_argmax():
    model = build_model("lenet5", (1, 28, 28), 10, seed=0).eval()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(256, 1, 28, 28, generator=gen)
    prog = integerize(model, x)
    with torch.no_grad():
        ref = model(x)
    got = integer_forward(prog, x)
    assert (got - ref).abs().max() <= 0.1 * ref.abs().max()
    assert (got.argmax(1) == ref.argmax(1)).float().mean() >= 0.9


def test_dyadic_multiplier_matches_real_scale():
    m = np.array([0.1, 3e-4, 0.75, 0.999999])
    m0, n = dyadic(m)
    assert ((m0 >= 1 << 30) & (m0 < 1 << 31)).all()
    np.testing.assert_allclose(m0 / 2.0 ** n, m, rtol=2 ** -30)


def test_requantization_rounds_like_the_formula():
    """One Linear with hand-checkable numbers: out = round(acc * M) via (acc*M0 + 2^(n-1)) >> n."""
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0]]))
    calib = torch.tensor([[127.0, -127.0]])  # in scale 1; output max 254 -> out scale 2
    prog = integerize(nn.Sequential(lin), calib)
    assert prog.in_scale == 1.0 and prog.out_scale == 2.0
    x = torch.tensor([[3.0, 0.0], [5.0, 0.0], [-3.0, 0.0]])
    # weights int8 127 at scale 1/127; acc = 127*x; M = 1 * (1/127) / 2 -> y = round_half_up(x / 2)
    assert integer_forward(prog, x, dequantize=False).flatten().tolist() == [2, 3, -1]


def test_unsupported_layers_are_refused_before_work():
    with pytest.raises(ConfigError, match="Linear/Conv2d"):
        integerize(nn.Sequential(nn.Linear(4, 4), nn.Tanh()), torch.randn(2, 4))
