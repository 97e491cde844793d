"""The context coder (docs/format.md 4.4): exact round trips on random and adversarial histograms, wins over ANS on
streams with previous-symbol structure, whole-file round trips, and typed errors in bounded time on crafted data."""
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import netpress
from craft import edit, split, tensor
from encode_helpers import runs_model
from netpress.encode import NetpressFormatError, ans, context, load_state, read_manifest
from netpress.encode.ans import varints
from netpress.encode.context import LOW, M, STEPS
from netpress.encode.manifest import check_manifest
from netpress.encode.streams import decode_stream, encode_stream
from netpress.prune.masks import plain_state_dict


def _roundtrip(x, k):
    data, params = context.encode(x, k)
    assert np.array_equal(context.decode(data, len(x), k, params), np.asarray(x, dtype=np.int64))
    return data, params


def _markov(n, k, stay, seed=0):
    """Runs: each symbol repeats the previous one with probability ``stay``, else a fresh uniform draw."""
    rng = np.random.default_rng(seed)
    fresh = rng.integers(0, k, n)
    keep = rng.random(n) < stay
    idx = np.where(keep, 0, np.arange(n))
    np.maximum.accumulate(idx, out=idx)
    return fresh[idx]


# ---------------------------------------------------------------- round trips

@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 3 * STEPS + 7), k=st.integers(1, 300), alpha=st.sampled_from([0.01, 0.3, 5.0]),
       stay=st.sampled_from([0.0, 0.9]), seed=st.integers(0, 999))
def test_roundtrip_random_histograms(n, k, alpha, stay, seed):
    rng = np.random.default_rng(seed)
    x = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, alpha)))
    if stay:  # previous-symbol structure, so contexts get chosen
        x = x[np.maximum.accumulate(np.where(rng.random(n) < stay, 0, np.arange(n)))] if n else x
    _roundtrip(x, k)


ADVERSARIAL = {
    "empty": (np.zeros(0, np.int64), 7),
    "alphabet 1": (np.zeros(5000, np.int64), 1),
    "one symbol of many": (np.full(9000, 3), 5),
    "all distinct": (np.random.default_rng(1).permutation(4096), 4096),
    "huge alphabet, two used": (np.where(np.arange(10000) % 3 == 0, 4095, 17), 4096),
    "one rare symbol among 2**20": (np.where(np.arange(1 << 20) == 777_777, 1, 0), 2),
    "a symbol in every lane start only": (np.where(np.arange(3 * STEPS) % STEPS == 0, 2, 0), 3),
    "exactly one lane": (np.arange(STEPS) % 5, 5),
    "one lane plus one": (np.arange(STEPS + 1) % 5, 5),
    "alternating": (np.arange(20000) % 2, 2),
    "every symbol its own context": (np.arange(60000) % 63, 63),
}


@pytest.mark.parametrize("case", list(ADVERSARIAL))
def test_roundtrip_adversarial_histograms(case):
    x, k = ADVERSARIAL[case]
    data, params = _roundtrip(x, k)
    meta = {"coding": "context", "count": len(x), "alphabet": k, **params}
    assert np.array_equal(decode_stream(data, meta, "s"), x)


def test_alternating_symbols_cost_almost_nothing():
    """Order-1 contexts make 0101... deterministic: only tables and lane states remain."""
    x = np.arange(20000) % 2
    data, params = _roundtrip(x, 2)
    assert params["contexts"] == 3 and len(data) < 40 + 4 * context.lanes_for(len(x))


def test_quantized_tables_sum_to_m_and_keep_every_used_symbol():
    for counts in ([1, 0, 10 ** 9], [1] * 4096, [5], [0, 0, 1], list(range(300)), [10 ** 6] + [1] * 4095,
                   [0, 10 ** 6] + [1] * 3000 + [0] * 5):
        f = context.quantize(np.array(counts))
        assert f.sum() == M and np.all((f > 0) == (np.array(counts) > 0))


# ---------------------------------------------------------------- size vs ANS

@pytest.mark.parametrize("k,stay", [(2, 0.95), (9, 0.9), (33, 0.8)])
def test_beats_ans_on_streams_with_runs(k, stay):
    x = _markov(200_000, k, stay)
    c_data, c_meta = encode_stream(x, k, "context")
    a_data, _ = encode_stream(x, k, "ans")
    assert c_meta["coding"] == "context" and len(c_data) < 0.7 * len(a_data)
    assert np.array_equal(decode_stream(c_data, c_meta), x)
    auto_data, auto_meta = encode_stream(x, k, "auto")
    assert auto_meta["coding"] == "context" and len(auto_data) == len(c_data)


def test_context_coder_choice_falls_back_to_ans_without_structure():
    """iid symbols: contexts cannot pay; 'context' keeps whichever of ANS / the context coder is smaller."""
    rng = np.random.default_rng(3)
    x = rng.choice(17, size=50_000, p=rng.dirichlet(np.full(17, 0.5)))
    data, meta = encode_stream(x, 17, "context")
    assert len(data) <= min(len(ans.encode(x, 17)[0]), len(context.encode(x, 17)[0]))
    assert context.choose_map(x, 17).size == 0
    assert np.array_equal(decode_stream(data, meta), x)


def test_encoding_a_lenet_sized_stream_is_fast():
    x = _markov(60_000, 33, 0.5)
    start = time.process_time()
    data, params = context.encode(x, 33)
    context.decode(data, len(x), 33, params)
    assert time.process_time() - start < 1.5


# ---------------------------------------------------------------- whole files

def test_file_roundtrip_with_the_context_coder(tmp_path):
    model = runs_model()
    path, ans_path = tmp_path / "c.netp", tmp_path / "a.netp"
    netpress.save(model, path, coder="context")
    netpress.save(model, ans_path, coder="ans")
    codings = [t["values"]["coding"] for t in read_manifest(path)["tensors"] if t["kind"] == "codes"]
    assert codings.count("context") >= 2
    assert path.stat().st_size < 0.5 * ans_path.stat().st_size
    want, got = plain_state_dict(model), plain_state_dict(netpress.load(path))
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


# ---------------------------------------------------------------- crafted inputs

def _stream(n=3 * STEPS + 100, k=9):
    x = _markov(n, k, 0.8, seed=5)
    data, params = context.encode(x, k)
    assert params["contexts"] > 1
    return x, k, data, params


def _decode(data, params, count, k):
    start = time.process_time()
    try:
        return context.decode(data, count, k, params, "s")
    finally:
        assert time.process_time() - start < 1.0


def _map_and_rows(params, data, k):
    raw = np.frombuffer(data[:params["table_bytes"]], np.uint8)
    m = params["contexts"]
    cmap, used = context.read_varints(raw, m - 1, "t")
    rows, _ = context.read_varints(raw[used:], m * k, "t")
    return cmap, rows.reshape(m, k)


def _rebuild(params, data, cmap, rows):
    table = varints(np.asarray(cmap)) + varints(np.asarray(rows).reshape(-1))
    return table + data[params["table_bytes"]:], {**params, "table_bytes": len(table), "contexts": len(rows)}


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 100])
def test_truncated_payload_is_refused(cut):
    x, k, data, params = _stream()
    with pytest.raises(NetpressFormatError):
        _decode(data[:-cut], params, len(x), k)


@pytest.mark.parametrize("delta", [-1, 1, -STEPS, STEPS, 10 * STEPS])
def test_wrong_count_is_refused(delta):
    x, k, data, params = _stream()
    with pytest.raises(NetpressFormatError):
        _decode(data, params, len(x) + delta, k)


@pytest.mark.parametrize("extra", [b"\x00\x00", b"\xff\xff" * 3])
def test_leftover_words_are_refused(extra):
    x, k, data, params = _stream()
    with pytest.raises(NetpressFormatError, match="leftover|do not return"):
        _decode(data + extra, params, len(x), k)


@pytest.mark.parametrize("params", [{"contexts": 0, "table_bytes": 0}, {"contexts": 65, "table_bytes": 0},
                                    {"contexts": 11, "table_bytes": 0}, {"contexts": "2", "table_bytes": 0},
                                    {"contexts": 2, "table_bytes": -1}, {"contexts": 2, "table_bytes": 10 ** 9},
                                    {"contexts": 2}, {}])
def test_absurd_parameters_are_refused(params):
    x, k, data, _ = _stream()
    with pytest.raises(NetpressFormatError):
        _decode(data, params, len(x), k)


def test_absurd_context_tables_are_refused():
    x, k, data, params = _stream()
    cmap, rows = _map_and_rows(params, data, k)
    bad = rows.copy()
    bad[0, 0] += 1  # a row summing to M + 1
    cases = {"sum": (cmap, bad), "dup": (np.r_[cmap[:-1], cmap[0]], rows), "outside": (np.r_[cmap[:-1], k], rows),
             "huge": (cmap, np.where(rows == rows.max(), 1 << 50, rows))}
    zero = rows.copy()
    zero[0] += zero[1]
    zero[1] = 0  # a used context without counts (the total still right)
    cases["empty row"] = (cmap, zero)
    ctx0 = rows.copy()
    ctx0[1] += ctx0[0]
    ctx0[0] = 0  # context 0 (every lane start) must have counts
    cases["empty context 0"] = (cmap, ctx0)
    swapped = rows.copy()
    swapped[1, [0, 1]] = swapped[1, [1, 0]]  # same total, other model: the payload no longer fits
    cases["swapped"] = (cmap, swapped)
    messages = {"sum": "do not sum", "huge": "do not sum", "empty context 0": "context 0",
                "empty row": "without a table"}
    for label, (c, r) in cases.items():
        bad_data, bad_params = _rebuild(params, data, c, r)
        with pytest.raises(NetpressFormatError, match=messages.get(label)):
            _decode(bad_data, bad_params, len(x), k)
    short, short_params = _rebuild(params, data, cmap, rows[:-1])
    with pytest.raises(NetpressFormatError, match="context tables are truncated"):  # fewer rows than contexts
        _decode(short, {**short_params, "contexts": params["contexts"]}, len(x), k)


def test_states_below_the_interval_and_flipped_bits_are_refused():
    x, k, data, params = _stream()
    t = params["table_bytes"]
    low = data[:t] + (LOW - 1).to_bytes(4, "little") + data[t + 4:]
    with pytest.raises(NetpressFormatError, match="below"):
        _decode(low, params, len(x), k)
    for at in (t + 1, t + 13, len(data) // 2, len(data) - 1):
        flipped = bytearray(data)
        flipped[at] ^= 0x10
        with pytest.raises(NetpressFormatError):
            _decode(bytes(flipped), params, len(x), k)


def test_decode_is_bounded_by_the_section_before_any_step(monkeypatch):
    """A huge count on a few bytes needs more lane states than the section holds: refused before decoding."""
    x, k, data, params = _stream()
    cmap, rows = _map_and_rows(params, data, k)
    rows[0, 0] += 10 ** 9 - len(x)  # counts that agree with the huge count
    monkeypatch.setattr(context, "_unrans", lambda *a: pytest.fail("decoding started"))
    with pytest.raises(NetpressFormatError, match="lane states"):
        _decode(*_rebuild(params, data, cmap, rows), 10 ** 9, k)


def test_a_certain_symbol_decodes_fast_for_any_count():
    """One symbol with probability 1 costs no words: decode work is the output size (bounded by the tensor)."""
    n = 3_000_000
    data, params = context.encode(np.full(n, 2), 3)
    assert len(data) == params["table_bytes"] + 4 * context.lanes_for(n)
    assert np.array_equal(_decode(data, params, n, 3), np.full(n, 2))


def test_bad_context_parameters_in_a_file_are_typed_one_line_errors(tmp_path):
    path = tmp_path / "c.netp"
    netpress.save(runs_model(), path, coder="context")
    blob = path.read_bytes()
    for value in ("x", 0, 1 << 40, None, True):
        def change(m, s, value=value):
            tensor(m, "features.0.weight")["values"]["contexts"] = value
        bad = tmp_path / "bad.netp"
        bad.write_bytes(edit(blob, change))
        with pytest.raises(NetpressFormatError, match="context count") as err:
            load_state(bad)
        assert "\n" not in str(err.value)
        with pytest.raises(NetpressFormatError, match="context count"):  # the manifest check, before any section
            check_manifest(split(edit(blob, change))[0])


def test_counts_that_quantize_alike_must_still_match_the_symbols():
    """With 2**17 symbols, counts [4a+1, 4b+1, 4c-2] quantize like [4a, 4b, 4c] (c largest): the payload decodes
    cleanly, only the count check sees the table is not this stream's."""
    want = [32_000, 32_000, 67_072]
    x = np.random.default_rng(9).permutation(np.repeat(np.arange(3), want))
    data, params = context.encode(x, 3)
    cmap, rows = _map_and_rows(params, data, 3)
    assert params["contexts"] == 1 and rows.tolist() == [want]
    other = [want[0] + 1, want[1] + 1, want[2] - 2]
    assert np.array_equal(context.quantize(np.array(other)), context.quantize(np.array(want)))
    with pytest.raises(NetpressFormatError, match="do not match the context counts"):
        _decode(*_rebuild(params, data, cmap, [other]), len(x), 3)


def test_recipes_accept_the_context_coder():
    from netpress.errors import NetpressError
    from netpress.pipeline.recipe import parse_recipe

    recipe = parse_recipe({"stages": [{"encode": {"coder": "context"}}]})
    assert recipe.stages[0].hparams.coder == "context"
    with pytest.raises(NetpressError, match="coder"):
        parse_recipe({"stages": [{"encode": {"coder": "contexts"}}]})
