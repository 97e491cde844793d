"""Frankle & Carbin's Conv-2/4/6 (VGG-like 3x3 stacks + 256-256 head), for any input size and channel count."""
from __future__ import annotations

from torch import nn

from netpress.models.base import MODELS, flat_size

_PLANS = {"conv2": [64, 64, "M"], "conv4": [64, 64, "M", 128, 128, "M"],
          "conv6": [64, 64, "M", 128, 128, "M", 256, 256, "M"]}


class ConvNet(nn.Module):
    def __init__(self, plan, input_shape=(3, 32, 32), num_classes=10):
        super().__init__()
        layers, channels = [], input_shape[0]
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
                channels = item
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(flat_size(self.features, input_shape), 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


for _name, _plan in _PLANS.items():
    MODELS.register(_name, lambda input_shape=(3, 32, 32), num_classes=10, _p=_plan: ConvNet(_p, input_shape, num_classes))
