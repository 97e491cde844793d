"""enum positions (format 1.3): each row's set of columns as its rank among all sets of that size.

Oracles: itertools' enumeration of subsets (in colex order, the combinatorial number system's), the closed-form
size ``sum ceil(log2 C(cols, k))`` bits, and the bitmask's coded size on the same mask."""
import itertools
import math

import numpy as np
import pytest

import netpress
from craft import edit, tensor
from netpress.encode import NetpressFormatError, load_state, positions as P, read_manifest
from netpress.encode.streams import encode_stream, estimate
from netpress.quantize.sharing import share_weights


def _streams(pos):
    return {k: v[0] for k, v in pos.streams.items()}


def _decode(streams, shape, params=None):
    params = params or dict(zip(("rows", "cols"), P._matrix(shape)))
    return P.decode("enum", params, streams, shape, "w/positions")


@pytest.mark.parametrize("cols", range(2, 9))
def test_ranks_count_subsets_in_colex_order(cols):
    """Every subset of every size gets rank = its index among all subsets of that size, and decodes back."""
    for k in range(cols + 1):
        subsets = sorted(itertools.combinations(range(cols), k), key=lambda s: s[::-1])
        for rank, subset in enumerate(subsets):
            pos = P.enumerative(np.array(subset, dtype=np.int64), (1, cols))
            width = math.ceil(math.log2(len(subsets))) if len(subsets) > 1 else 0
            assert P.rank_widths(np.array([k]), cols) == [width]
            text = "".join(format(b, "08b") for b in pos.streams["ranks"][0].tolist())
            assert (int(text[:width], 2) if width else 0) == rank, subset
            assert _decode(_streams(pos), (1, cols)).tolist() == list(subset)


def test_large_rows_roundtrip_and_fill_the_information_bound():
    rng = np.random.default_rng(1)
    for shape, density in [((37, 4096), 0.5), ((300, 784), 0.08), ((64, 100), 0.97), ((5, 2, 3, 7), 0.3)]:
        kept = np.flatnonzero(rng.random(int(np.prod(shape))) < density)
        pos = P.enumerative(kept, shape)
        assert np.array_equal(_decode(_streams(pos), shape), kept)
        rows, cols = P._matrix(shape)
        counts = np.bincount(kept // cols, minlength=rows)
        bound = sum(math.ceil(math.log2(math.comb(cols, int(k)))) for k in counts)
        assert len(pos.streams["ranks"][0]) == (bound + 7) // 8


def test_enum_beats_the_bitmask_when_rows_differ_in_density():
    """Half the rows 40% dense, half 2%: one iid bit model overpays on both; per-row counts do not."""
    rng = np.random.default_rng(2)
    density = np.repeat([0.4, 0.02], 150)[:, None]
    kept = np.flatnonzero((rng.random((300, 784)) < density).reshape(-1))
    enum = sum(estimate(s, a, "ans")[1] for s, a in P.enumerative(kept, (300, 784)).streams.values())
    mask = sum(estimate(s, a, "ans")[1] for s, a in P.bitmask(kept, 300 * 784).streams.values())
    assert enum < 0.93 * mask


def test_a_saved_row_skewed_layer_uses_enum_and_loads_back(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(784, 300)
    keep = torch.rand(300, 784, generator=g) < torch.linspace(0.01, 0.4, 300)[:, None]
    with torch.no_grad():
        layer.weight.mul_(keep)
    path = tmp_path / "l.netp"
    netpress.save(share_weights(layer, 4), path)
    assert tensor(read_manifest(path), "weight")["positions"]["method"] == "enum"
    state, _ = load_state(path)
    assert torch.equal(state["weight"] != 0, keep)


# ---------------------------------------------------------------- hostile streams

@pytest.fixture
def row_pair():
    pos = P.enumerative(np.array([1, 2, 4, 6, 7]), (2, 6))  # rows {1, 2, 4} and {0, 1}: 5 + 4 bits, 7 padding
    return _streams(pos)


def test_rank_out_of_range_is_refused(row_pair):
    bad = dict(row_pair, ranks=np.array([0xFF, 0x80], dtype=np.uint8))  # row 0: 31 >= C(6, 3) = 20
    with pytest.raises(NetpressFormatError, match=r"w/positions.*rank of row 0 is out of range"):
        _decode(bad, (2, 6))


def test_wrong_ranks_length_is_refused(row_pair):
    for ranks in (row_pair["ranks"][:0], np.append(row_pair["ranks"], 0).astype(np.uint8)):
        with pytest.raises(NetpressFormatError, match="wrong length"):
            _decode(dict(row_pair, ranks=ranks), (2, 6))


def test_nonzero_padding_is_refused(row_pair):
    padded = row_pair["ranks"].copy()
    padded[-1] |= 1
    with pytest.raises(NetpressFormatError, match="padding"):
        _decode(dict(row_pair, ranks=padded), (2, 6))


def test_row_counts_beyond_the_columns_are_refused(row_pair):
    with pytest.raises(NetpressFormatError, match="row counts"):
        _decode(dict(row_pair, row_counts=np.array([7, 2])), (2, 6))


@pytest.mark.parametrize("shape", [(1, 5000), (1, 1), (1 << 11, 1 << 10)])
def test_enum_is_refused_outside_its_size_limits(shape):
    params = dict(zip(("rows", "cols"), P._matrix(shape)))
    with pytest.raises(NetpressFormatError, match="2-4096 columns"):
        P.check_params("enum", params, shape, "w/positions")


def test_crafted_file_with_an_out_of_range_rank_names_the_tensor(tmp_path):
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(64, 8)
    with torch.no_grad():
        layer.weight.mul_(torch.rand(8, 64, generator=torch.Generator().manual_seed(3)) < 0.2)
    path = tmp_path / "ok.netp"
    netpress.save(share_weights(layer, 4), path)
    assert tensor(read_manifest(path), "weight")["positions"]["method"] == "enum"

    def max_ranks(m, sections):
        streams = tensor(m, "weight")["positions"]["streams"]
        data, meta = encode_stream(np.full(streams["ranks"]["count"], 0xFF), 256, "packed")
        sections[streams["ranks"]["section"]] = data
        streams["ranks"] = {"section": streams["ranks"]["section"], **meta}
    bad = tmp_path / "bad.netp"
    bad.write_bytes(edit(path.read_bytes(), max_ranks))
    with pytest.raises(NetpressFormatError, match=r"weight/positions.*(out of range|padding)"):
        load_state(bad)
