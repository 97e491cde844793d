"""Shared fixtures: tiny data and models, an isolated runs folder."""
from __future__ import annotations

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
