"""Compact storage: affine (scale + zero point) uniform codes, float16 codebooks/scales, fast raw tensors."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

import netpress
from netpress.encode.api import load_state, read_manifest
from netpress.encode.tensors import _planes, _unplanes
from netpress.quantize import export_codes, share_weights
from netpress.quantize.codes import Codes
from netpress.quantize.uniform import UniformSpec, dequantize, quantize_weights


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64))


def sections(manifest, name):
    return {s["name"]: s["length"] for s in manifest["sections"] if s["name"].startswith(name + "/")}


def old_table_codes(c: Codes) -> Codes:
    """The layout the old code path wrote: a float32 [channels, 2**bits] table per tensor."""
    levels = torch.arange(c.qmin, c.qmin + (1 << c.bits), dtype=torch.int64)
    book = dequantize(levels[None, :], c.scale.reshape(-1, 1), c.zero_point.reshape(-1, 1))
    return Codes(c.indices.long(), book, c.bits, c.axis, "uniform")


def test_per_channel_codes_store_scales_not_tables_and_decode_bit_identically(tmp_path):
    model = quantize_weights(net(), UniformSpec(bits=8, granularity="channel"))
    report = netpress.save(model, tmp_path / "q.netp")
    manifest = read_manifest(tmp_path / "q.netp")
    entry = next(t for t in manifest["tensors"] if t["name"] == "0.weight")
    assert "codebook" not in entry and entry["affine"]["slices"] == 128 and entry["axis"] == 0
    sizes = sections(manifest, "0.weight")
    assert sizes["0.weight/scale"] in (128 * 2, 128 * 4)
    assert sizes["0.weight/values"] <= 256 * 128 * 8 // 8 + 400  # ~ bits * n / 8 (+ Huffman tables)
    state, _ = load_state(tmp_path / "q.netp")
    fresh = netpress.load(tmp_path / "q.netp", model=net(1))
    for name in ("0.weight", "2.weight"):
        assert torch.equal(state[name], export_codes(model)[name].decode())
        assert torch.equal(fresh.get_parameter(name), model.get_submodule(name[0]).weight)
    # the old layout of the same codes is several times larger, and old-layout files still load exactly
    old = {n: old_table_codes(c) for n, c in export_codes(model).items()}
    old_report = netpress.save(model, tmp_path / "old.netp", codes=old)
    assert report["file_bytes"] * 3 < old_report["file_bytes"]
    old_state, _ = load_state(tmp_path / "old.netp")
    assert all(torch.equal(old_state[n], state[n]) for n in state)


def test_per_group_codes_are_affine_not_a_distinct_value_table(tmp_path):
    torch.manual_seed(0)
    model = quantize_weights(net(), UniformSpec(bits=4, granularity="group", axis=1, group_size=32, symmetric=False))
    codes = export_codes(model)["0.weight"]
    assert codes.affine and codes.group_size == 32 and codes.scale.numel() == 128 * 256 // 32
    netpress.save(model, tmp_path / "g.netp")
    manifest = read_manifest(tmp_path / "g.netp")
    entry = next(t for t in manifest["tensors"] if t["name"] == "0.weight")
    assert entry["bits"] == 4 and entry["affine"]["group_size"] == 32 and entry["affine"]["slices"] == 1024
    assert sections(manifest, "0.weight")["0.weight/values"] <= 256 * 128 * 4 // 8 + 100
    fresh = netpress.load(tmp_path / "g.netp", model=net(1))
    assert torch.equal(fresh[0].weight, model[0].weight) and torch.equal(fresh[2].weight, model[2].weight)


@pytest.mark.parametrize("axis", [0, 1])
def test_affine_decode_equals_quantizer_for_any_group_axis(axis):
    torch.manual_seed(0)
    w = torch.randn(8, 12, 4)
    spec = UniformSpec(bits=3, granularity="group", axis=axis, group_size=4, symmetric=False)
    from netpress.quantize.uniform import calibrate, expand, fake_quantize, uniform_codes

    s, z = calibrate(w, spec)
    codes = uniform_codes(w, s, z, spec)
    assert torch.equal(codes.decode(), fake_quantize(w, expand(s, w, spec), expand(z, w, spec), spec.qmin, spec.qmax))


def test_float16_scales_only_when_lossless(tmp_path):
    model = quantize_weights(net(), UniformSpec(bits=4, granularity="channel"))
    netpress.save(model, tmp_path / "a.netp")
    dtypes = {t["name"]: t["affine"]["scale"]["dtype"] for t in read_manifest(tmp_path / "a.netp")["tensors"]
              if "affine" in t}
    assert set(dtypes.values()) == {"float32"}  # minmax scales are not float16-exact
    with torch.no_grad():  # make the scales float16-exact: the file then stores them in float16, still exact
        for m in (model[0], model[2]):
            q = m.parametrizations.weight[0]
            q.scale.copy_(q.scale.half().float())
    netpress.save(model, tmp_path / "b.netp")
    manifest = read_manifest(tmp_path / "b.netp")
    assert {t["affine"]["scale"]["dtype"] for t in manifest["tensors"] if "affine" in t} == {"float16"}
    assert sections(manifest, "0.weight")["0.weight/scale"] == 128 * 2
    fresh = netpress.load(tmp_path / "b.netp", model=net(1))
    assert torch.equal(fresh[0].weight, model[0].weight)


def test_kmeans_codebook_float16_when_asked_or_lossless(tmp_path):
    model = share_weights(net(), 4, iterations=20)
    netpress.save(model, tmp_path / "auto.netp")
    book = next(t for t in read_manifest(tmp_path / "auto.netp")["tensors"] if t["name"] == "0.weight")["codebook"]
    assert book.get("dtype", "float32") == "float32"
    netpress.save(model, tmp_path / "half.netp", codebook_dtype="float16")
    manifest = read_manifest(tmp_path / "half.netp")
    entry = next(t for t in manifest["tensors"] if t["name"] == "0.weight")
    assert entry["codebook"]["dtype"] == "float16" and sections(manifest, "0.weight")["0.weight/codebook"] == 16 * 2
    state, _ = load_state(tmp_path / "half.netp")
    c = export_codes(model)["0.weight"]
    want = Codes(c.indices, c.codebook.half().float(), c.bits).decode()  # lossy by exactly the float16 rounding
    assert torch.equal(state["0.weight"], want)
    with torch.no_grad():  # a float16-exact codebook is stored in float16 by default, losslessly
        model[0].parametrizations.weight[0].codebook.copy_(c.codebook.half().float())
    netpress.save(model, tmp_path / "exact.netp")
    entry = next(t for t in read_manifest(tmp_path / "exact.netp")["tensors"] if t["name"] == "0.weight")
    assert entry["codebook"]["dtype"] == "float16"
    assert torch.equal(netpress.load(tmp_path / "exact.netp", model=net(1))[0].weight, model[0].weight)


def test_incompressible_raw_tensor_skips_zstd_fast(tmp_path):
    torch.manual_seed(0)
    noise = nn.Module()
    noise.register_buffer("blob", torch.randint(0, 256, (8 << 20,), dtype=torch.uint8))  # 8 MiB of random bytes
    start = time.perf_counter()
    netpress.save(noise, tmp_path / "n.netp")
    elapsed = time.perf_counter() - start
    entry = read_manifest(tmp_path / "n.netp")["tensors"][0]
    assert entry["compression"] == "none" and elapsed < 5  # full zstd -19 of 8 MiB takes far longer
    fresh = nn.Module()
    fresh.register_buffer("blob", torch.zeros(8 << 20, dtype=torch.uint8))
    assert torch.equal(netpress.load(tmp_path / "n.netp", model=fresh).blob, noise.blob)


def test_byte_planes_round_trip_and_pay_on_smooth_floats(tmp_path):
    data = torch.randn(4096).numpy().tobytes()
    assert _unplanes(_planes(data, 4), 4) == data
    smooth = nn.Linear(2048, 600, bias=False)
    with torch.no_grad():
        smooth.weight.copy_(torch.randn(600, 2048).half().float())  # float16-valued: low mantissa bytes are zero
    netpress.save(smooth, tmp_path / "s.netp")
    entry = next(t for t in read_manifest(tmp_path / "s.netp")["tensors"] if t["name"] == "weight")
    assert entry["compression"] == "zstd-planes"
    assert torch.equal(netpress.load(tmp_path / "s.netp", model=nn.Linear(2048, 600, bias=False)).weight, smooth.weight)
