"""Deterministic fuzzing of the reader: fixed seed, fixed case count, byte damage plus crafted (re-sealed)
section and manifest mutations. Every case is a typed error within a time bound, or loads and matches the
original wherever the mutation could not reach (byte damage: everywhere)."""
import random

import pytest

import netpress
from encode_helpers import runs_model
from fuzzing import KINDS, run_case
from netpress.encode import load_state, read_manifest
from netpress.prune.masks import plain_state_dict

CASES = 240          # per file, split evenly over the three kinds
SECONDS_PER_CASE = 1.0  # CPU seconds


def _registry_load(path):
    return plain_state_dict(netpress.load(path))


@pytest.mark.parametrize("which", ["registry", "user", "context"])
def test_fuzz_every_case_is_typed_or_faithful(tmp_path, small_registry_model, user_model, which):
    path = tmp_path / "orig.netp"
    if which == "registry":
        netpress.save(small_registry_model, path, coder="huffman")
        load = _registry_load
    elif which == "context":  # context-coded value streams (docs/format.md 4.4)
        netpress.save(runs_model(), path, coder="context")
        assert "context" in {t["values"]["coding"] for t in read_manifest(path)["tensors"] if t["kind"] == "codes"}
        load = _registry_load
    else:
        netpress.save(user_model, path, coder="auto")
        load = load_state
    blob = path.read_bytes()
    original = {k: v for k, v in (load(path) if which != "user" else load(path)[0]).items()}
    run = (lambda p: load(p)[0]) if which == "user" else load
    rng = random.Random(1234)
    outcomes = [run_case(tmp_path / "case.netp", blob, original, KINDS[i % 3], rng, run) for i in range(CASES)]

    bad = [(o.kind, o.result, o.error) for o in outcomes if o.result in ("crash", "corrupt")]
    assert not bad, bad[:5]
    slow = [(o.kind, round(o.seconds, 2), o.error) for o in outcomes if o.seconds > SECONDS_PER_CASE]
    assert not slow, slow[:5]
    assert all(o.result in ("rejected", "identical") for o in outcomes if o.kind == "bytes")
    assert all("\n" not in o.error for o in outcomes)
    for kind in KINDS:  # the mutators really reach the reader: each kind has rejections
        assert sum(o.result == "rejected" for o in outcomes if o.kind == kind) >= CASES // 12, kind
