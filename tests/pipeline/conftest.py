"""Shared fixtures of the pipeline tests: small LeNet-300s trained on built-in data."""
import pytest

from netpress.data import load_data
from netpress.models import build_model
from netpress.train import TrainingHparams, train


def trained_lenet300(dataset: str, steps: str, batch_size: int):
    """``(model, data)``: a LeNet-300 (seed 0) trained on ``dataset`` for ``steps`` at lr 0.05."""
    data = load_data(dataset)
    model = build_model("lenet300", data.input_shape, data.num_classes, seed=0)
    train(model, data, TrainingHparams(steps=steps, batch_size=batch_size, lr=0.05), device="cpu")
    return model, data


@pytest.fixture(scope="module")
def trained():
    return trained_lenet300("synthetic", "2ep", 100)


@pytest.fixture(scope="module")
def digits_model():
    return trained_lenet300("digits", "4ep", 50)
