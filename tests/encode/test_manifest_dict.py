"""Format 1.3: the manifest is zstd-compressed against a frozen dictionary shipped with netpress; 1.2 files
(plain zstd manifests) still read; the dictionary cannot change without the reader noticing."""
import hashlib
import json
import re
import zlib
from importlib import resources
from pathlib import Path

import pytest
import torch

import netpress
from netpress.encode import NetpressFormatError, container, load_state

DOCS = Path(__file__).resolve().parents[2] / "docs" / "format.md"


@pytest.fixture
def saved(tmp_path, user_model):
    path = tmp_path / "u.netp"
    netpress.save(user_model, path, coder="auto", recipe={"name": "budget", "stages": [{"prune": {"sparsity": 0.9}}]},
                  metrics={"test_accuracy": 0.9})
    return path


def _reseal_1_2(blob: bytes) -> bytes:
    """The same file as a format-1.2 writer made it: plain zstd manifest, flags 1, minor 2."""
    mlen = container.HEADER.unpack_from(blob)[4]
    text = json.dumps(container.parse(blob)[0]).encode()
    body = container.zstd_compress(text)
    head = container.HEADER.pack(container.MAGIC, 1, 2, container.FLAG_ZSTD_MANIFEST, len(body), zlib.crc32(body))
    return head + body + blob[container.HEADER.size + mlen:]


def test_dictionary_is_the_frozen_one_documented():
    data = resources.files("netpress.encode").joinpath(container.DICT_NAME).read_bytes()
    assert hashlib.sha256(data).hexdigest() == container.DICT_SHA256
    assert container.DICT_SHA256 in DOCS.read_text()


def test_writer_uses_the_dictionary_and_it_saves_bytes(saved):
    blob = saved.read_bytes()
    _, major, minor, flags, mlen, _ = container.HEADER.unpack_from(blob)
    assert (major, minor, flags) == (1, 3, container.FLAG_ZSTD_MANIFEST | container.FLAG_MANIFEST_DICT)
    old = _reseal_1_2(blob)
    assert len(old) - len(blob) >= 200  # the keys and recipe text come from the dictionary
    assert container.parse(old)[0] == container.parse(blob)[0]


def test_format_1_2_files_still_load_bit_identically(tmp_path, saved):
    path = tmp_path / "old.netp"
    path.write_bytes(_reseal_1_2(saved.read_bytes()))
    new, _ = load_state(saved)
    old, _ = load_state(path)
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in new)


def test_dictionary_frame_read_without_the_flag_is_a_manifest_error(tmp_path, saved):
    blob = bytearray(saved.read_bytes())
    blob[12] = container.FLAG_ZSTD_MANIFEST
    with pytest.raises(NetpressFormatError, match="manifest"):
        container.parse(bytes(blob))


def test_dictionary_bomb_is_refused_before_allocating():
    bomb = container.zstd_compress(b" " * (container.MAX_MANIFEST + 1), dictionary=container.manifest_dictionary())
    flags = container.FLAG_ZSTD_MANIFEST | container.FLAG_MANIFEST_DICT
    blob = container.HEADER.pack(container.MAGIC, 1, 3, flags, len(bomb), zlib.crc32(bomb)) + bomb
    with pytest.raises(NetpressFormatError, match="declares"):
        container.parse(blob)


def test_a_changed_dictionary_is_refused(monkeypatch):
    monkeypatch.setattr(container, "_DICTIONARY", [])
    monkeypatch.setattr(container, "DICT_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="frozen"):
        container.manifest_dictionary()


def test_docs_name_the_version():
    assert re.search(r"version 1\.3", DOCS.read_text())
