"""Models shared by the encode tests."""
import torch
from torch import nn

from netpress.prune.masks import apply_masks


class UserNet(nn.Module):
    """A model outside the registry, with a conv, a norm (buffers) and a linear layer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.norm(self.conv(x))).flatten(1))


def magnitude_prune(model, keep):
    masks = {}
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.dim() > 1:
            masks[name] = (p.detach().abs() >= p.detach().abs().flatten().quantile(1 - keep)).float()
    return apply_masks(model, masks)


def runs_model(seed=0):
    """A registry LeNet-300-100 (8x8 input) whose weights come in runs of equal values with runs of pruned zeros
    (strong previous-symbol structure: the context coder beats ANS on its streams), k-means shared to 3 bits."""
    from netpress.models import build_model
    from netpress.quantize import share_weights

    model = build_model("lenet300", (1, 8, 8), 10, seed=seed)
    g = torch.Generator().manual_seed(seed)
    levels = torch.tensor([0.0, 0.0, 0.0, -0.3, -0.1, 0.1, 0.2, 0.4])  # zeros: runs of pruned weights
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                run_id = torch.cumsum((torch.rand(p.numel(), generator=g) < 0.08).long(), 0)
                pick = torch.randint(0, len(levels), (int(run_id[-1]) + 1,), generator=g)
                p.copy_(levels[pick[run_id]].reshape(p.shape))
    return share_weights(model, 3)
