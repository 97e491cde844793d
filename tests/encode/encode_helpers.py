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
