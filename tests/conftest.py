"""Shared fixtures: tiny data and models, an isolated runs folder."""
from __future__ import annotations

import sys

import pytest
import torch

from netpress.data import load_data


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Every test gets its own runs folder and a single intra-op thread (deterministic, friendly to CI)."""
    monkeypatch.setenv("NETPRESS_HOME", str(tmp_path / "runs"))
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synthetic():
    return load_data("synthetic")


def _registries():
    """Every :class:`netpress.registry.Registry` defined in an imported netpress module."""
    from netpress.registry import Registry

    found = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("netpress") and module is not None:
            found.update({id(v): v for v in vars(module).values() if isinstance(v, Registry)})
    return list(found.values())


@pytest.fixture(autouse=True)
def _registries_unchanged():
    """Global registries are shared by every test: a test that adds or replaces an entry fails (and is undone).
    Register test-only entries inside the ``registry_sandbox`` fixture."""
    before = [(r, dict(r._items)) for r in _registries()]
    yield
    changed = [r.kind for r, items in before if r._items != items]
    for r, items in before:
        r._items = items
    assert not changed, f"the test changed global registries: {changed}; use the registry_sandbox fixture"


@pytest.fixture()
def registry_sandbox():
    """Entries registered during the test are removed afterwards."""
    before = [(r, dict(r._items)) for r in _registries()]
    yield
    for r, items in before:
        r._items = items
