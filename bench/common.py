"""Shared setup for bench scripts: the canonical dense baselines (trained once, cached by hash) and result writing.

Every bench trains or reuses the same dense LeNets, stored under ``bench/.runs`` (ignored by git), so the
scripts can run in any order and in parallel (run folders are locked while training).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

from netpress.data import DataHparams, load_data
from netpress.models import ModelHparams
from netpress.runs import TrainedRun, train_run
from netpress.train import TrainingHparams

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
RUNS = BENCH / ".runs"

# dense baselines on Fashion-MNIST (targets: lenet300 >= 0.89, lenet5 >= 0.90 test accuracy)
DENSE = {
    "lenet300": (ModelHparams("lenet300", init="kaiming_normal"),
                 TrainingHparams(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=128, steps="20ep",
                                 lr_schedule="cosine", weight_decay=1e-4)),
    # Caffe LeNet-5 has no ReLU between its convs: lr 0.02 diverges (NaN); 0.01 with a short warm-up is stable
    "lenet5": (ModelHparams("lenet5", init="kaiming_normal"),
               TrainingHparams(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=128, steps="10ep",
                               lr_schedule="cosine", warmup="200it", weight_decay=1e-4)),
}


def dense_run(name: str, data: str = "fashion-mnist", val_size: int = -1) -> TrainedRun:
    """The trained dense baseline ``name`` (``lenet300`` or ``lenet5``), trained on first use then reused;
    ``val_size`` other than the dataset's default (-1) carves a validation set of that size instead."""
    model_hp, train_hp = DENSE[name]
    data_hp = DataHparams(data, val_size=val_size)
    return train_run(model_hp, data_hp, train_hp, root=RUNS, data=load_data(data_hp))


def write_result(stem: str, payload: dict, markdown: str) -> None:
    """Write ``bench/results/<stem>.json`` and ``.md``, each with the command and machine that produced it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], BENCH.parent), *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
    }
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, **payload}, indent=2, default=float) + "\n")
    header = f"<!-- produced by: {meta['command']} ({meta['date']}; {meta['machine']}) -->\n\n"
    (RESULTS / f"{stem}.md").write_text(header + markdown.rstrip() + "\n")
