"""Fixtures of the lottery tests: the synthetic splits, loaded once."""
import pytest

from netpress.data import load_data


@pytest.fixture(scope="session")
def data():
    return load_data("synthetic")
