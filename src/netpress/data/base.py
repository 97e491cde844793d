"""In-memory datasets, splits and a fast batch iterator."""
from __future__ import annotations

import dataclasses
from typing import Iterator, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset

from netpress.errors import ConfigError, DataError


class TensorData(Dataset):
    """Inputs and integer labels held as tensors; indexable like any Dataset."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if len(x) != len(y):
            raise DataError(f"inputs ({len(x)}) and labels ({len(y)}) differ in length")
        self.x, self.y = x, y.long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def subset(self, indices: torch.Tensor) -> "TensorData":
        return TensorData(self.x[indices], self.y[indices])


@dataclasses.dataclass
class DataSplits:
    """Train / validation / test data of one task, with its shape facts."""

    train: Dataset
    val: Dataset | None
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    name: str = "custom"


class Batch(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor  # positions in the dataset, so losses can look up cached targets


def iterations_per_epoch(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch, a pure function of (seed, epoch) so resumes reproduce it."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def batches(data: Dataset, batch_size: int, order: torch.Tensor | None = None, start: int = 0) -> Iterator[Batch]:
    """Yield batches of ``data`` in ``order`` (default: sequential), starting at batch ``start``."""
    n = len(data)
    if order is None:
        order = torch.arange(n)
    if isinstance(data, TensorData):
        for b in range(start, iterations_per_epoch(n, batch_size)):
            idx = order[b * batch_size:(b + 1) * batch_size]
            yield Batch(data.x[idx], data.y[idx], idx)
        return
    # any user Dataset: a DataLoader over the chosen order
    sub = order[start * batch_size:]
    loader = DataLoader(torch.utils.data.Subset(data, sub.tolist()), batch_size=batch_size, shuffle=False)
    for b, (x, y) in enumerate(loader):
        yield Batch(x, torch.as_tensor(y).long(), sub[b * batch_size:b * batch_size + len(x)])


def to_tensor_data(data: Dataset) -> TensorData:
    """Materialise any (small) Dataset of (input, label) pairs into a TensorData."""
    if isinstance(data, TensorData):
        return data
    xs, ys = zip(*(data[i] for i in range(len(data))))
    return TensorData(torch.stack([torch.as_tensor(x) for x in xs]).float(), torch.as_tensor(ys))


def split_validation(train: TensorData, val_size: int, seed: int) -> tuple[TensorData, TensorData | None]:
    """Carve a fixed-seed validation set of ``val_size`` examples out of ``train``."""
    if val_size <= 0:
        return train, None
    if val_size >= len(train):
        raise ConfigError(f"val_size {val_size} leaves no training data (the training set has {len(train)} examples)")
    perm = epoch_order(len(train), seed, epoch=-1)
    return train.subset(perm[val_size:]), train.subset(perm[:val_size])
