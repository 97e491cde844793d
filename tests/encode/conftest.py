import pytest
import torch

from encode_helpers import UserNet, magnitude_prune
from netpress.models import build_model
from netpress.quantize import share_weights


@pytest.fixture
def small_registry_model():
    torch.manual_seed(0)
    model = build_model("lenet300", (1, 8, 8), 10, seed=0)
    return share_weights(magnitude_prune(model, 0.3), 4)


@pytest.fixture
def user_model():
    torch.manual_seed(1)
    model = UserNet()
    model.norm.running_mean.uniform_(-1, 1)
    model.norm.running_var.uniform_(0.5, 2)
    return share_weights(magnitude_prune(model, 0.5), {"conv.weight": 3, "fc.weight": 5})
