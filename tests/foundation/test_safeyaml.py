"""The configuration YAML loader: plain data only, bounded, UTF-8."""
from __future__ import annotations

import time

import pytest
import yaml

from netpress import safeyaml
from netpress.errors import ConfigError


@pytest.mark.parametrize("text", ["stages: [{prune: {sparsity: 0.9}}]", "a: 1\nb: [x, {c: null}]\n", "[]", ""])
def test_plain_documents_load_like_safe_load(text):
    assert safeyaml.load(text) == yaml.safe_load(text)


def test_alias_bomb_is_refused_at_once():
    bomb = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                     + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")])
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="line 1: YAML anchors and aliases"):
        safeyaml.load(bomb)
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("text,match", [
    ("a: &x 1\nb: 2", "anchors and aliases"),
    ("[" * 50_000 + "]" * 50_000, "nested deeper than 64"),
    ("a:\n" + "".join("  " * (i + 1) + "- \n" for i in range(70)), "nested deeper than 64"),
    (b"a: \xff", r"not UTF-8 text \(byte 3"),
    ("a: [", "invalid YAML"),
    ("x" * (safeyaml.MAX_BYTES + 1), "over the 1,048,576-byte limit"),
])
def test_hostile_documents_raise_one_config_error(text, match):
    with pytest.raises(safeyaml.YamlError, match=match) as info:
        safeyaml.load(text)
    assert "\n" not in str(info.value)


def test_depth_limit_is_exact():
    assert safeyaml.load("[" * safeyaml.MAX_DEPTH + "]" * safeyaml.MAX_DEPTH) is not None
    with pytest.raises(safeyaml.YamlError):
        safeyaml.load("[" * (safeyaml.MAX_DEPTH + 1) + "]" * (safeyaml.MAX_DEPTH + 1))
