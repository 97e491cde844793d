"""Registry models whose structure changed (thinned by structured pruning) reload from the .netp alone."""
import torch

import netpress
from netpress.models import build_model
from netpress.prune.surgery import prune_structured
from netpress.quantize import share_weights


def test_thinned_and_shared_registry_model_reloads_without_a_skeleton(tmp_path):
    model = build_model("lenet5", (1, 28, 28), 10, seed=0)
    x = torch.randn(3, 1, 28, 28)
    small = prune_structured(model, 0.5, x).model
    assert small.classifier[0].out_features < 500  # really thinner
    share_weights(small, bits=5)
    path = tmp_path / "thin.netp"
    netpress.save(small, path)
    loaded = netpress.load(path)
    assert loaded.classifier[0].out_features == small.classifier[0].out_features
    with torch.no_grad():
        assert torch.equal(loaded(x), small.eval()(x))
