"""Built-in datasets. Nothing is downloaded: files are read from a folder."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from netpress.data.base import DataSplits, TensorData, split_validation
from netpress.data.idx import read_idx
from netpress.errors import DataError
from netpress.hparams import Hparams, require
from netpress.registry import Registry

DATASETS: Registry[Callable[["DataHparams", "str | None"], tuple[TensorData, TensorData, int]]] = Registry("dataset")

DEBIAN_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"}
INSTALL_HINT = {
    "fashion-mnist": "install it with `apt-get install dataset-fashion-mnist` (Debian), or put the four IDX files "
                     "(train-images-idx3-ubyte[.gz], ...) in a folder and pass --data-dir or set NETPRESS_DATA",
    "mnist": "put the four MNIST IDX files (train-images-idx3-ubyte[.gz], ...) in a folder and pass --data-dir "
             "or set NETPRESS_DATA",
}
DEFAULT_VAL_SIZE = {"digits": 300, "synthetic": 200}
# per-dataset channel mean/std of the [0,1] pixels
_NORMALISE = {"fashion-mnist": (0.2860, 0.3530), "mnist": (0.1307, 0.3081)}


def input_range(name: str) -> tuple[float, float] | None:
    """The bounds of a valid (normalised) input of dataset ``name``: pixels 0 and 1 through its normalisation
    constants; None for datasets without known bounds. Reads no data.

    Example:
        >>> input_range("mnist")
        (-0.4242..., 2.8215...)
    """
    if name not in _NORMALISE:
        return None
    mean, std = _NORMALISE[name]
    return ((0.0 - mean) / std, (1.0 - mean) / std)


@dataclasses.dataclass(frozen=True)
class DataHparams(Hparams):
    """Which data and how it is split.

    Attributes:
        name: a registered dataset (``fashion-mnist``, ``mnist``, ``digits``, ``synthetic``).
        val_size: examples carved from the training set for validation (fixed seed); -1 = the dataset's
            default (5,000 as in the Lottery Ticket paper; fewer for the small built-in sets).
        split_seed: seed of that split.
        train_subset: keep only the first N training examples after the split (0 = all); for quick runs.
    """

    name: str = "fashion-mnist"
    val_size: int = -1
    split_seed: int = 0
    train_subset: int = 0

    def validate(self) -> None:
        require(self.name in DATASETS, f"unknown dataset {self.name!r}; known: {', '.join(DATASETS.names())}")
        require(self.val_size >= -1, f"val_size must be >= 0 (or -1 for the dataset default), got {self.val_size}")
        require(self.train_subset >= 0, f"train_subset must be >= 0, got {self.train_subset}")


def load_data(hparams: DataHparams | str = "fashion-mnist", data_dir: str | Path | None = None) -> DataSplits:
    """Load a registered dataset as train / val / test splits.

    Args:
        hparams: a :class:`DataHparams` or just the dataset name.
        data_dir: folder with the files (only there when given); else ``$NETPRESS_DATA``, else the Debian
            package's folder.

    Returns:
        :class:`DataSplits` with in-memory tensors.

    Raises:
        DataError: ``data_dir`` is not a folder, or the files are missing or malformed.

    Example:
        >>> splits = load_data("digits")
        >>> splits.num_classes
        10
    """
    if isinstance(hparams, str):
        hparams = DataHparams(name=hparams)
    check_data_dir(data_dir)
    train, test, num_classes = DATASETS.get(hparams.name)(hparams, None if data_dir is None else str(data_dir))
    val_size = DEFAULT_VAL_SIZE.get(hparams.name, 5000) if hparams.val_size < 0 else hparams.val_size
    train, val = split_validation(train, val_size, hparams.split_seed)
    if hparams.train_subset:
        train = train.subset(torch.arange(min(hparams.train_subset, len(train))))
    return DataSplits(train, val, test, num_classes, tuple(train.x.shape[1:]), hparams.name)


def check_data_dir(data_dir: str | Path | None) -> None:
    """Raise :class:`DataError` unless ``data_dir`` is None or an existing folder (never a silent fallback)."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"data folder {str(data_dir)!r} does not exist or is not a folder")


def find_idx_dir(name: str, data_dir: str | None) -> Path:
    """Locate the IDX folder of ``name``, or fail saying where we looked (only in ``data_dir`` when given)."""
    candidates = []
    for base in (data_dir,) if data_dir else (os.environ.get("NETPRESS_DATA"), DEBIAN_DIRS.get(name)):
        if base:
            candidates += [Path(base), Path(base) / name]
    for folder in candidates:
        if _idx_file(folder, "train-images-idx3-ubyte") is not None:
            return folder
    looked = ", ".join(str(c) for c in candidates) or "(nowhere: no folder given)"
    raise DataError(f"{name} data not found; looked in: {looked}. To get it: {INSTALL_HINT.get(name, '')}")


def _idx_file(folder: Path, stem: str) -> Path | None:
    for suffix in ("", ".gz"):
        p = folder / (stem + suffix)
        if p.is_file():
            return p
    return None


def _read_idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    paths = {}
    for kind, stem in (("images", f"{prefix}-images-idx3-ubyte"), ("labels", f"{prefix}-labels-idx1-ubyte")):
        p = _idx_file(folder, stem)
        if p is None:
            raise DataError(f"missing {stem}[.gz] in {folder}")
        paths[kind] = p
    images, labels = read_idx(paths["images"]), read_idx(paths["labels"])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{paths['images']} / {paths['labels']}: expected N x H x W images and N labels, "
            f"got shapes {images.shape} and {labels.shape}"
        )
    return images, labels


def _idx_dataset(name: str):
    def load(hp: DataHparams, data_dir: str | None):
        folder = find_idx_dir(name, data_dir)
        mean, std = _NORMALISE[name]
        out = []
        for prefix in ("train", "t10k"):
            images, labels = _read_idx_pair(folder, prefix)
            x = (torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) - mean) / std
            out.append(TensorData(x, torch.from_numpy(labels.astype(np.int64))))
        return out[0], out[1], 10

    return load


DATASETS.register("fashion-mnist", _idx_dataset("fashion-mnist"))
DATASETS.register("mnist", _idx_dataset("mnist"))


@DATASETS.register("digits")
def _digits(hp: DataHparams, data_dir: str | None):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.3) / 0.4
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    x, y = x[perm], y[perm]
    return TensorData(x[:1500], y[:1500]), TensorData(x[1500:], y[1500:]), 10


@DATASETS.register("synthetic")
def _synthetic(hp: DataHparams, data_dir: str | None):
    """Four Gaussian blobs in 1x8x8 'images'; a small net separates them quickly."""
    g = torch.Generator().manual_seed(7)
    centers = torch.randn(4, 64, generator=g) * 1.5

    def make(n: int, seed: int) -> TensorData:
        gg = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 4, (n,), generator=gg)
        x = centers[y] + torch.randn(n, 64, generator=gg)
        return TensorData(x.view(n, 1, 8, 8), y)

    return make(1200, 1), make(400, 2), 4
