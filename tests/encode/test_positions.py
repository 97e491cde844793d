import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from netpress.encode import positions as P
from netpress.encode.errors import NetpressFormatError


def test_relative_fillers_match_deep_compression_fig2():
    # 3-bit gaps cover jumps of up to 8 positions; longer jumps get filler entries every 8
    kept = np.array([1, 4, 20, 21, 40])
    pos = P.relative(kept, 3)
    assert pos.entries.tolist() == [1, 4, 12, 20, 21, 29, 37, 40]
    assert pos.streams["gaps"][0].tolist() == [1, 2, 7, 7, 0, 7, 7, 2]
    assert pos.streams["gaps"][0].max() < 8


def test_best_gap_bits_minimises_fixed_width_total():
    rng = np.random.default_rng(0)
    kept = np.flatnonzero(rng.random(20000) < 0.08)
    b = P.best_gap_bits(kept, 5)
    cost = lambda bb: len(P.relative(kept, bb).entries) * (bb + 5)
    assert all(cost(b) <= cost(other) for other in range(1, 17))


def _roundtrip(pos, shape):
    streams = {k: v[0] for k, v in pos.streams.items()}
    P.check_params(pos.method, pos.params, shape, "t")
    return P.decode(pos.method, pos.params, streams, shape, "t")


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), density=st.floats(0, 1), seed=st.integers(0, 99))
def test_every_method_roundtrips(shape, density, seed):
    mask = np.random.default_rng(seed).random(int(np.prod(shape))) < density
    kept = np.flatnonzero(mask)
    for pos in P.candidates(kept, tuple(shape), 5):
        entries = _roundtrip(pos, tuple(shape))
        assert np.array_equal(entries, pos.entries)
        if pos.method != "dense":
            assert set(kept.tolist()) <= set(entries.tolist())
        if pos.method in ("bitmask", "csr"):
            assert np.array_equal(entries, kept)


def test_positions_outside_tensor_are_rejected():
    with pytest.raises(NetpressFormatError, match="outside"):
        P.decode("relative", {"b": 3}, {"gaps": np.array([7, 7, 7])}, (10,), "w")
    with pytest.raises(NetpressFormatError, match="CSR"):
        P.decode("csr", {"rows": 2, "cols": 5}, {"row_counts": np.array([1, 1]), "cols": np.array([3])}, (2, 5), "w")
    with pytest.raises(NetpressFormatError, match="repeat"):
        P.decode("csr", {"rows": 1, "cols": 5}, {"row_counts": np.array([2]), "cols": np.array([3, 3])}, (5,), "w")
    with pytest.raises(NetpressFormatError, match="gap width"):
        P.check_params("relative", {"b": 99}, (5,), "w")
