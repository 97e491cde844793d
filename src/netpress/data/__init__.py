"""Datasets: a registry of loaders that read standard formats from a folder; nothing downloads.

Example:
    >>> from netpress.data import load_data
    >>> splits = load_data("synthetic")
"""
from netpress.data.base import Batch, DataSplits, TensorData, batches, epoch_order, iterations_per_epoch, to_tensor_data
from netpress.data.datasets import DATASETS, DataHparams, check_data_dir, input_range, load_data
from netpress.data.idx import read_idx, write_idx

__all__ = [
    "Batch", "DataSplits", "TensorData", "batches", "epoch_order", "iterations_per_epoch", "to_tensor_data",
    "DATASETS", "DataHparams", "check_data_dir", "input_range", "load_data", "read_idx", "write_idx",
]
