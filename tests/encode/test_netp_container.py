import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import netpress
from netpress.encode import NetpressFormatError, container, read_manifest
from netpress.encode.tensors import Reader, Sections, decode_entry, encode_codes, encode_raw
from netpress.errors import ConfigError
from netpress.prune.masks import plain_state_dict
from netpress.quantize import Codes, export_codes

import craft
from encode_helpers import UserNet


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 12), min_size=1, max_size=4), bits=st.integers(1, 9),
       density=st.floats(0, 1), per_channel=st.booleans(), coder=st.sampled_from(["huffman", "ans", "auto"]),
       seed=st.integers(0, 999))
def test_codes_roundtrip_bit_exact(shape, bits, density, per_channel, coder, seed):
    g = torch.Generator().manual_seed(seed)
    k = int(torch.randint(1, 2 ** bits + 1, (1,), generator=g))
    idx = torch.randint(0, k, shape, generator=g)
    idx[torch.rand(shape, generator=g) >= density] = -1
    axis = 0 if per_channel else None
    book = torch.randn((shape[0], k) if per_channel else (k,), generator=g)
    codes = Codes(idx, book, bits, axis)
    sections = Sections()
    entry = encode_codes("w", codes, sections, coder)
    out = decode_entry(entry, Reader(dict(sections.items)))
    expected = codes.decode()
    assert out.dtype == expected.dtype and torch.equal(out.view(torch.int32), expected.view(torch.int32))


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(0, 10), min_size=0, max_size=3), zeros=st.floats(0, 1),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.bool]))
def test_raw_roundtrip_bit_exact(shape, zeros, dtype):
    t = torch.randn(shape) * (torch.rand(shape) >= zeros)
    t = t.to(dtype)
    sections = Sections()
    out = decode_entry(encode_raw("b", t, sections, "auto"), Reader(dict(sections.items)))
    assert out.dtype == t.dtype and out.shape == t.shape and torch.equal(out, t)


def test_registry_model_save_load_identical(tmp_path, small_registry_model):
    model = small_registry_model
    path = tmp_path / "m.netp"
    report = netpress.save(model, path, recipe={"prune": 0.7, "bits": 4}, metrics={"test_accuracy": 0.5})
    loaded = netpress.load(path)
    x = torch.randn(16, 1, 8, 8)
    assert torch.equal(loaded(x), model.eval()(x))
    for name, codes in export_codes(model).items():
        assert torch.equal(plain_state_dict(loaded)[name], codes.decode())
    manifest = read_manifest(path)
    assert manifest["recipe"] == {"prune": 0.7, "bits": 4} and manifest["metrics"]["test_accuracy"] == 0.5
    assert report["file_bytes"] == path.stat().st_size and report["ratio"] > 4


@pytest.mark.parametrize("coder", ["huffman", "ans", "auto"])
def test_user_model_save_load_identical(tmp_path, user_model, coder):
    path = tmp_path / "u.netp"
    netpress.save(user_model, path, coder=coder)
    loaded = netpress.load(path, model=UserNet())
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(loaded(x), user_model.eval()(x))
    assert torch.equal(loaded.norm.running_var, user_model.norm.running_var)


def test_user_model_needs_model_argument_and_matching_shapes(tmp_path, user_model):
    path = tmp_path / "u.netp"
    netpress.save(user_model, path)
    with pytest.raises(ConfigError, match="model=MyNet"):
        netpress.load(path)
    other = UserNet()
    other.fc = torch.nn.Linear(4 * 6 * 6, 7)
    before = other.conv.weight.detach().clone()
    with pytest.raises(ConfigError, match="fc.weight"):
        netpress.load(path, model=other)
    assert torch.equal(other.conv.weight, before)  # nothing partially loaded


def test_codes_that_do_not_match_the_weights_are_refused(tmp_path):
    model = torch.nn.Linear(4, 2)
    wrong = Codes(torch.zeros(2, 4, dtype=torch.long), torch.tensor([0.5]), 1)
    with pytest.raises(ConfigError, match="reproduce"):
        netpress.save(model, tmp_path / "x.netp", codes={"weight": wrong})


def test_plain_model_without_codes_roundtrips(tmp_path):
    model = UserNet()
    netpress.save(model, tmp_path / "p.netp")
    loaded = netpress.load(tmp_path / "p.netp", model=UserNet())
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_write_is_atomic(tmp_path, monkeypatch, small_registry_model):
    path = tmp_path / "m.netp"
    netpress.save(small_registry_model, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(container.os, "fsync", crash)
    with pytest.raises(OSError):
        netpress.save(small_registry_model, path, coder="ans")
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.netp"]


def test_no_pickle_in_the_file(tmp_path, small_registry_model):
    path = tmp_path / "m.netp"
    netpress.save(small_registry_model, path)
    blob = path.read_bytes()
    assert blob[:8] == container.MAGIC and b"\x80\x04\x95" not in blob and b"torch._utils" not in blob


def test_manifest_checksum_mismatch_is_reported_as_such():
    # an uncompressed manifest whose flipped byte still parses: only the CRC can tell the file is damaged
    blob = craft.seal({"note": "aaaa"}, {"x": b"123"}, compress=False)
    at = blob.index(b"aaaa")
    damaged = blob[:at] + b"b" + blob[at + 1:]
    assert container.parse(blob)[0]["note"] == "aaaa"
    with pytest.raises(NetpressFormatError, match="checksum mismatch") as info:
        container.parse(damaged)
    assert info.value.section == "manifest"
