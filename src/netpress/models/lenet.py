"""LeNet-300-100 and the Caffe LeNet-5 used in Deep Compression."""
from __future__ import annotations

import math

from torch import nn

from netpress.models.base import MODELS, flat_size


@MODELS.register("lenet300")
class LeNet300(nn.Module):
    """Fully connected 784-300-100-10 (input size follows ``input_shape``)."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, hidden=(300, 100)):
        super().__init__()
        sizes = [math.prod(input_shape), *hidden]
        self.flatten = nn.Flatten()
        layers = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc_out = nn.Linear(sizes[-1], num_classes)

    def forward(self, x):
        return self.fc_out(self.features(self.flatten(x)))


@MODELS.register("lenet5")
class LeNet5(nn.Module):
    """Caffe LeNet-5: conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10 (431K weights on 28x28)."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(input_shape[0], 20, 5), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(flat_size(self.features, input_shape), 500), nn.ReLU(),
            nn.Linear(500, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
