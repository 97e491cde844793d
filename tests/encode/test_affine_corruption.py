"""Crafted manifests around affine codes and activation quantizers: a named NetpressFormatError, model untouched."""
import json
import zlib

import pytest
import torch
from torch import nn

import netpress
from netpress.encode import NetpressFormatError, container
from netpress.quantize.ptq import PTQHparams, ptq
from netpress.quantize.uniform import UniformSpec, quantize_weights
from netpress.data.base import TensorData


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))


@pytest.fixture
def saved(tmp_path):
    model = quantize_weights(net(), UniformSpec(bits=4, granularity="group", axis=1, group_size=2, symmetric=False))
    data = TensorData(torch.randn(16, 8), torch.zeros(16, dtype=torch.long))
    ptq(model, data, PTQHparams(w_bits=8, a_bits=8, calibration_examples=16), names=["2.weight"])
    path = tmp_path / "a.netp"
    netpress.save(model, path)
    return path


def rewrite(blob: bytes, edit) -> bytes:
    _, major, minor, flags, mlen, _ = container.HEADER.unpack_from(blob)
    n = container.HEADER.size
    manifest = container.parse(blob)[0]  # also undoes the manifest dictionary (format 1.3)
    edit(manifest)
    body = container.zstd_compress(json.dumps(manifest).encode())
    return container.HEADER.pack(container.MAGIC, major, minor, 1, len(body), zlib.crc32(body)) + body + blob[n + mlen:]


def affine(m, name="0.weight"):
    return next(t for t in m["tensors"] if t["name"] == name)["affine"]


CASES = [
    ("slices", lambda m: affine(m).update(slices=7), "0.weight/affine"),
    ("group size", lambda m: affine(m).update(group_size=3), "0.weight/affine"),
    ("qmin", lambda m: affine(m).update(qmin="x"), "0.weight/affine"),
    ("scale dtype", lambda m: affine(m)["scale"].update(dtype="float64"), "0.weight/scale"),
    ("scale section", lambda m: affine(m)["scale"].update(section="2.bias/data"), "0.weight/scale"),
    ("zero point count", lambda m: affine(m)["zero_point"]["stream"].update(count=5), "0.weight/zero_point"),
    ("zero point kind", lambda m: affine(m).update(zero_point={"dtype": "int8"}), "0.weight/zero_point"),
    ("both forms", lambda m: next(t for t in m["tensors"] if t["name"] == "0.weight").update(codebook={}),
     "0.weight/affine"),
    ("activation spec", lambda m: m["activation_quantizers"]["2"].update(bits=99), "manifest"),
    ("activation mode", lambda m: m["activation_quantizers"]["2"].update(mode="sometimes"), "manifest"),
    ("activation list", lambda m: m.update(activation_quantizers=[1]), "manifest"),
]


@pytest.mark.parametrize("label,edit,section", CASES, ids=[c[0] for c in CASES])
def test_crafted_affine_and_activation_entries(tmp_path, saved, label, edit, section):
    bad = tmp_path / "bad.netp"
    bad.write_bytes(rewrite(saved.read_bytes(), edit))
    model = net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NetpressFormatError) as info:
        netpress.load(bad, model=model)
    assert section in info.value.section, str(info.value)
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)


def test_the_untampered_file_loads(saved):
    assert netpress.load(saved, model=net())
