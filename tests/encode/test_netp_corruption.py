"""Every kind of bad input raises NetpressFormatError naming the section; nothing crashes or half-loads."""
import json
import struct
import zlib

import pytest
import torch

import netpress
from encode_helpers import UserNet
from netpress.encode import NetpressFormatError, container, load_state
from netpress.errors import NetpressError


@pytest.fixture
def saved(tmp_path, user_model):
    path = tmp_path / "u.netp"
    netpress.save(user_model, path, coder="auto")
    return path


def _rewrite(blob: bytes, edit) -> bytes:
    """Apply ``edit`` to the manifest and re-seal it with a valid checksum (a crafted, not a damaged, file)."""
    _, major, minor, flags, mlen, _ = container.HEADER.unpack_from(blob)
    n = container.HEADER.size
    manifest = container.parse(blob)[0]  # also undoes the manifest dictionary (format 1.3)
    edit(manifest)
    return _seal(json.dumps(manifest).encode(), blob[n + mlen:], compress=rng_compress(manifest))


def rng_compress(manifest) -> bool:
    return len(manifest.get("sections", [])) % 2 == 0 if isinstance(manifest, dict) else True


def _seal(body: bytes, data: bytes, compress: bool = True, major: int = 1, flags: int | None = None) -> bytes:
    body = container.zstd_compress(body) if compress else body
    flags = int(compress) if flags is None else flags
    return container.HEADER.pack(container.MAGIC, major, 0, flags, len(body), zlib.crc32(body)) + body + data


def _tensor(m, name):
    return next(t for t in m["tensors"] if t["name"] == name)


def _expect(tmp_path, blob, section=None):
    bad = tmp_path / "bad.netp"
    bad.write_bytes(blob)
    model = UserNet()
    before = [v.clone() for v in model.state_dict().values()]
    with pytest.raises(NetpressFormatError) as info:
        netpress.load(bad, model=model)
    assert isinstance(info.value, NetpressError) and info.value.section
    if section:
        assert section in info.value.section, str(info.value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values()))  # no partial model
    return info.value


def test_wrong_magic_and_unknown_version(tmp_path, saved):
    blob = saved.read_bytes()
    _expect(tmp_path, b"PK\x03\x04" + blob[4:], "header")
    _expect(tmp_path, blob[:8] + struct.pack("<H", 9) + blob[10:], "header")
    _expect(tmp_path, b"", "header")


def test_truncation_anywhere(tmp_path, saved):
    blob = saved.read_bytes()
    for cut in (5, 19, 20, 100, len(blob) // 2, len(blob) - 1):
        _expect(tmp_path, blob[:cut])
    _expect(tmp_path, blob + b"\0", "data")


def test_flipped_bits_name_the_section(tmp_path, saved):
    blob = saved.read_bytes()
    _expect(tmp_path, blob[:30] + bytes([blob[30] ^ 1]) + blob[31:], "manifest")
    _expect(tmp_path, blob[:12] + bytes([blob[12] ^ 4]) + blob[13:], "header")  # unknown flag
    assert blob[12] == 3  # zstd manifest with the format-1.3 dictionary
    _expect(tmp_path, blob[:12] + bytes([blob[12] ^ 2]) + blob[13:], "manifest")  # the dictionary flag cleared
    _expect(tmp_path, blob[:12] + bytes([blob[12] ^ 1]) + blob[13:], "header")  # dictionary without zstd
    _expect(tmp_path, blob[:-3] + bytes([blob[-3] ^ 4]) + blob[-2:], "fc.")  # the last section belongs to fc
    manifest = netpress.encode.read_manifest(saved)
    conv = next(s for s in manifest["sections"] if s["name"] == "conv.weight/codebook")
    at = len(blob) - manifest["data_length"] + conv["offset"]
    _expect(tmp_path, blob[:at] + bytes([blob[at] ^ 0x80]) + blob[at + 1:], "conv.weight/codebook")


CRAFTED = [
    ("absurd shape", lambda m: _tensor(m, "fc.weight").update(shape=[2 ** 39, 2 ** 39]), "manifest"),
    ("negative dim", lambda m: _tensor(m, "fc.weight").update(shape=[-5, 144]), "fc.weight"),
    ("shape grows", lambda m: _tensor(m, "fc.weight").update(shape=[5, 1440]), "fc.weight"),
    ("section past end", lambda m: m["sections"][0].update(offset=10 ** 12), ""),
    ("missing section", lambda m: _tensor(m, "conv.weight")["values"].update(section="nope"), "conv.weight/values"),
    ("count too big", lambda m: _tensor(m, "fc.weight")["values"].update(count=10 ** 15), "fc.weight"),
    ("alphabet wrong", lambda m: _tensor(m, "conv.weight")["values"].update(alphabet=3), "conv.weight/values"),
    ("codebook shape", lambda m: _tensor(m, "conv.weight")["codebook"].update(shape=[99]), "conv.weight/codebook"),
    ("bits too few", lambda m: _tensor(m, "fc.weight").update(bits=1), "fc.weight/codebook"),
    ("unknown coding", lambda m: _tensor(m, "conv.weight")["values"].update(coding="lzma"), "conv.weight/values"),
    ("unknown dtype", lambda m: _tensor(m, "fc.bias").update(dtype="complex64"), "fc.bias"),
    ("raw size", lambda m: _tensor(m, "fc.bias").update(shape=[6]), "fc.bias"),
    ("unknown kind", lambda m: _tensor(m, "fc.bias").update(kind="pickle"), "fc.bias"),
    ("bad method", lambda m: _tensor(m, "fc.weight")["positions"].update(method="rle"), "fc.weight/positions"),
    ("tensor list", lambda m: m.update(tensors={"a": 1}), "manifest"),
    ("data length", lambda m: m.update(data_length=-1), "data"),
    ("duplicate tensor", lambda m: m["tensors"].append(m["tensors"][0]), "manifest"),
]


@pytest.mark.parametrize("label,edit,section", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_manifests(tmp_path, saved, label, edit, section):
    _expect(tmp_path, _rewrite(saved.read_bytes(), edit), section)


def test_not_json_and_not_an_object(tmp_path, saved):
    blob = saved.read_bytes()
    data = blob[container.HEADER.size + container.HEADER.unpack_from(blob)[4]:]
    for body in (b"\xff\xfe{", b"[1, 2]", b"{" * 100000):
        _expect(tmp_path, _seal(body, data, compress=False), "manifest")
    _expect(tmp_path, _seal(b"{}", data, compress=False, flags=1), "manifest")  # flag says zstd, it is not
    bomb = container.zstd_compress(b" " * (container.MAX_MANIFEST + 1))
    _expect(tmp_path, _seal(bomb, data, compress=False, flags=1), "manifest")


def test_zstd_bomb_in_a_section_is_refused_before_allocating(tmp_path, saved):
    bomb = container.zstd_compress(bytes(1 << 26))
    blob = saved.read_bytes()
    _, _, _, _, mlen, _ = container.HEADER.unpack_from(blob)

    def edit(m):
        bias = next(t for t in m["tensors"] if t["name"] == "fc.bias")
        bias.update(compression="zstd", section="bomb")
        m["sections"].append({"name": "bomb", "offset": m["data_length"], "length": len(bomb), "crc32": zlib.crc32(bomb)})
        m["data_length"] += len(bomb)

    _expect(tmp_path, _rewrite(blob, edit) + bomb, "fc.bias")


def test_inspect_of_a_crafted_manifest_is_typed(tmp_path, saved):
    bad = tmp_path / "bad.netp"
    bad.write_bytes(_rewrite(saved.read_bytes(), lambda m: _tensor(m, "fc.weight").pop("values")))
    with pytest.raises(NetpressFormatError, match="fc.weight/values"):
        netpress.encode.summarize(netpress.encode.read_manifest(bad))


def test_missing_file_is_typed(tmp_path):
    with pytest.raises(NetpressFormatError, match="file"):
        netpress.load(tmp_path / "none.netp")


def test_element_limit_is_checked_before_decoding(saved):
    with pytest.raises(NetpressFormatError, match="limit"):
        load_state(saved, max_elements=10)
