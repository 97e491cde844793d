"""The ``train`` stage as a content-addressed, idempotent, resumable run."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from netpress.data import DataHparams, DataSplits, load_data
from netpress.errors import NetpressError
from netpress.models import ModelHparams, build_model, model_from_spec
from netpress.fileio import atomic_torch_save, atomic_write_text
from netpress.runs.paths import run_id, run_lock, runs_root, write_hparams
from netpress.runs.store import Store
from netpress.train import TrainingHparams, TrainResult, train

FINAL = "model.pt"
RESULT = "result.json"


@dataclasses.dataclass
class TrainedRun:
    """A finished training run: the model with its final weights and its summary."""

    id: str
    path: Path
    model: nn.Module
    summary: dict
    data: DataSplits
    reused: bool  # True when nothing was trained (the run was already finished)


def train_run(
    model_hp: ModelHparams,
    data_hp: DataHparams,
    train_hp: TrainingHparams,
    *,
    root: str | Path | None = None,
    data: DataSplits | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    progress: bool | None = None,
) -> TrainedRun:
    """Train a registry model on a registry dataset, or reuse/resume the run with the same hash.

    Args:
        model_hp, data_hp, train_hp: what to train; the run folder is named by their non-default values.
        root: runs folder (default ``$NETPRESS_HOME`` or ``./netpress_runs``).
        data: already-loaded splits (else loaded from ``data_hp``).
        data_dir: where the data files are.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: progress bar (default: only on a terminal).

    Returns:
        :class:`TrainedRun`.

    Example:
        >>> run = train_run(ModelHparams("lenet300"), DataHparams("fashion-mnist"), TrainingHparams(steps="2ep"))
    """
    root = runs_root(root)
    rid = run_id("train", model_hp, data_hp, train_hp)
    folder = root / rid
    store = Store(root)
    data = data or load_data(data_hp, data_dir)
    parts = {"model": model_hp, "data": data_hp, "training": train_hp}
    with run_lock(folder):
        return _train_locked(rid, folder, store, parts, data, device, progress)


def _train_locked(rid, folder, store, parts, data, device, progress) -> TrainedRun:
    model_hp, train_hp = parts["model"], parts["training"]
    flat = {k: v.to_dict() for k, v in parts.items()}
    if (folder / RESULT).exists():
        summary = json.loads((folder / RESULT).read_text())
        store.upsert_run(rid, "train", folder, flat, "done", summary)
        return TrainedRun(rid, folder, load_run_model(folder), summary, data, reused=True)
    write_hparams(folder, "train", parts)
    store.upsert_run(rid, "train", folder, flat, "running")
    model = build_model(model_hp, data.input_shape, data.num_classes, seed=train_hp.seed)
    _save_init(folder, model)
    result = train(model, data, train_hp, checkpoint_dir=folder, device=device, progress=progress,
                   desc=f"train {model_hp.name}")
    summary = {**result.summary(), "resumed_from": result.resumed_from}
    _finish(folder, model, result, summary)
    store.log_metrics(rid, result.metrics)
    store.upsert_run(rid, "train", folder, flat, "done", summary)
    return TrainedRun(rid, folder, model.cpu(), summary, data, reused=False)


def _save_init(folder: Path, model: nn.Module) -> None:
    path = folder / "init.pt"
    if not path.exists():
        atomic_torch_save({"spec": model.netpress_spec, "state": model.state_dict()}, path)


def _finish(folder: Path, model: nn.Module, result: TrainResult, summary: dict) -> None:
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"spec": model.netpress_spec, "state": state}, folder / FINAL)
    atomic_write_text(folder / "metrics.json", json.dumps(result.metrics, indent=1))
    atomic_write_text(folder / RESULT, json.dumps(summary, indent=2) + "\n")  # written last: marks the run done


def load_run_model(folder: str | Path, which: str = FINAL) -> nn.Module:
    """Rebuild a run's model (``model.pt`` = trained, ``init.pt`` = initial weights) without unpickling modules."""
    ck = torch.load(Path(folder) / which, map_location="cpu", weights_only=True)
    model = model_from_spec(ck["spec"])
    model.load_state_dict(ck["state"])
    return model


def resolve_run(ref: str, root: str | Path | None = None) -> Path:
    """A run folder from a path, a run id, or a unique id prefix.

    Raises:
        NetpressError: naming the candidates when the reference is unknown or ambiguous.
    """
    p = Path(ref)
    if (p / "hparams.json").exists():
        return p
    root = runs_root(root)
    if (root / ref / "hparams.json").exists():
        return root / ref
    matches = [r for r in Store(root).list_runs() if r["id"].startswith(ref) or r["id"].split("_", 1)[-1].startswith(ref)]
    if len(matches) == 1:
        return Path(matches[0]["path"])
    if not matches:
        raise NetpressError(f"no run {ref!r} in {root} (see `netpress runs list`)")
    raise NetpressError(f"run reference {ref!r} is ambiguous: {', '.join(m['id'] for m in matches)}")


def run_hparams(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "hparams.json").read_text())
