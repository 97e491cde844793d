"""round_codebooks: codebooks take float16 values, so 'auto' stores them in float16 and the file decodes exactly."""
import torch
from torch import nn

import netpress
from netpress.encode import read_manifest
from netpress.quantize import export_codes, round_codebooks, share_weights


def test_rounded_codebooks_are_float16_values_and_round_trip_exactly(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    share_weights(net, bits=4)
    before = {n: c.codebook.clone() for n, c in export_codes(net).items()}
    assert any(not torch.equal(b, b.half().float()) for b in before.values())  # not float16 values yet
    assert sorted(round_codebooks(net)) == ["0.weight", "2.weight"]
    for name, c in export_codes(net).items():
        assert torch.equal(c.codebook, before[name].half().float())
    netpress.save(net, tmp_path / "m.netp", coder="ans")
    books = {t["name"]: t["codebook"] for t in read_manifest(tmp_path / "m.netp")["tensors"] if "codebook" in t}
    assert {n: b.get("dtype") for n, b in books.items()} == {"0.weight": "float16", "2.weight": "float16"}
    x = torch.randn(8, 20)
    with torch.no_grad():
        fresh = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
        assert torch.equal(netpress.load(tmp_path / "m.netp", model=fresh)(x), net(x))
