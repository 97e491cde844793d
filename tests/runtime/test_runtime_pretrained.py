"""Files from the pretrained recipes (GPTQ codes, k-means embeddings) load into runtime form and match the decoded
model: pretrained-balanced (8-bit codes, zero point 0, one step per tensor) runs exactly on the int8 grid,
pretrained-4bit (4-bit codes per group of 128 inputs) is re-quantized per row within the int8 tolerance."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import netpress
from netpress.runtime import Int8Linear, LowBitEmbedding, RuntimeHparams
from netpress.runtime.kernels import _qint8

warnings.filterwarnings("ignore", message=".*(Sparse|deprecated).*")
FIRST_KIND = RuntimeHparams(kinds=("int8", "lowbit"), measure=False)  # int8 for Linear, lowbit for Embedding


class Tagger(nn.Module):
    """Token ids -> per-token scores: an Embedding, a Linear whose rows 128 inputs split, a short Linear."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(60, 256)
        self.up = nn.Linear(256, 48)
        self.out = nn.Linear(48, 8)

    def forward(self, ids):
        return self.out(torch.relu(self.up(self.emb(ids))))


def _compressed(tmp_path, recipe):
    torch.manual_seed(0)
    net = Tagger()
    calib = [torch.randint(0, 60, (8, 12)) for _ in range(3)]
    path = tmp_path / f"{recipe}.netp"
    netpress.compress_pretrained(net, calib, recipe, out=path, quality=lambda m: {}, report=tmp_path / "r.md")
    return path, calib[0]


def test_balanced_codes_run_exactly_on_per_tensor_int8(tmp_path):
    path, ids = _compressed(tmp_path, "pretrained-balanced")
    decoded = netpress.load(path, model=Tagger())
    fast = netpress.load(path, model=Tagger(), runtime=FIRST_KIND)
    assert isinstance(fast.up, Int8Linear) and isinstance(fast.out, Int8Linear)
    assert isinstance(fast.emb, LowBitEmbedding)
    assert fast.up.error == 0.0 and fast.out.error == 0.0  # the codes are on an int8 grid: nothing re-rounded
    assert torch.equal(fast.emb(ids), decoded.emb(ids))
    with torch.no_grad():
        ref, got = decoded(ids), fast(ids)
    # only the activations are rounded (dynamic 8-bit per call): a few percent of the output range
    assert (got - ref).abs().max() <= 0.05 * ref.abs().max()


def test_one_step_per_tensor_packs_per_tensor_and_per_row_steps_per_channel():
    from netpress.runtime.weights import int8_rows

    q = torch.randint(-100, 100, (6, 16)).float()
    one = int8_rows(q * 0.03)
    assert one.exact and _qint8(one).qscheme() == torch.per_tensor_affine
    rows = int8_rows(q * torch.linspace(0.01, 0.06, 6)[:, None])
    assert rows.exact and _qint8(rows).qscheme() == torch.per_channel_affine
    torch.testing.assert_close(_qint8(rows).dequantize().float(), q * torch.linspace(0.01, 0.06, 6)[:, None])
    torch.testing.assert_close(_qint8(one).dequantize().float(), q * 0.03)


def test_int8_rows_rounds_only_the_rows_off_the_grid():
    from netpress.runtime.weights import int8_rows

    torch.manual_seed(0)
    w = torch.randint(-90, 90, (5, 32)).float() * 0.02
    w[3] = torch.randn(32)  # one row with no int8 grid through 0
    i8 = int8_rows(w)
    back = i8.q.float() * i8.scale[:, None]
    keep = [0, 1, 2, 4]
    torch.testing.assert_close(back[keep], w[keep], rtol=1e-6, atol=1e-7)  # on-grid rows stay exact
    assert not i8.exact and 0 < i8.error <= 0.5 / 127 + 1e-6
    assert (back[3] - w[3]).abs().max() <= 0.5 / 127 * w[3].abs().max() + 1e-6


@pytest.mark.parametrize("recipe", ["pretrained-4bit"])
def test_4bit_group_codes_load_and_run_within_tolerance(tmp_path, recipe):
    path, ids = _compressed(tmp_path, recipe)
    decoded = netpress.load(path, model=Tagger())
    fast = netpress.load(path, model=Tagger(), runtime=FIRST_KIND)
    assert isinstance(fast.emb, LowBitEmbedding) and fast.emb.bits == 4  # 4-bit k-means: 16-entry codebook
    assert torch.equal(fast.emb(ids), decoded.emb(ids))
    assert fast.up.error <= 0.01  # 2 groups of 128 per row: not one int8 grid, re-quantized per row
    with torch.no_grad():
        ref, got = decoded(ids), fast(ids)
    assert (got - ref).abs().max() <= 0.05 * ref.abs().max()
